;; A call tree without loops or recursion that fans out: $f1 calls $f2
;; eight times, and so on down to $f6: 8^5 calls of $f6 for one of $f1.
;; Work grows with the fan-out, so checks go where it passes the budget.
(module
  (func $f6 (param i64) (result i64)
    (i64.xor (i64.mul (local.get 0) (i64.const 0x9e3779b97f4a7c15)) (i64.const 7)))
  (func $f5 (param i64) (result i64)
    (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (local.get 0))))))))))
  (func $f4 (param i64) (result i64)
    (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (local.get 0))))))))))
  (func $f3 (param i64) (result i64)
    (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (local.get 0))))))))))
  (func $f2 (param i64) (result i64)
    (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (local.get 0))))))))))
  (func (export "f1") (param i64) (result i64)
    (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (local.get 0)))))))))))
