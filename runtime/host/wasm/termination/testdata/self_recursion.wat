;; A function that calls itself: instrumented (a check at its entry, one
;; after the recursive call).
(module
  (func $fact (export "fact") (param $n i64) (result i64)
    (if (result i64) (i64.le_u (local.get $n) (i64.const 1))
      (then (i64.const 1))
      (else (i64.mul (local.get $n) (call $fact (i64.sub (local.get $n) (i64.const 1)))))))
  ;; Not recursive: left alone.
  (func (export "square") (param i64) (result i64)
    (i64.mul (local.get 0) (local.get 0))))
