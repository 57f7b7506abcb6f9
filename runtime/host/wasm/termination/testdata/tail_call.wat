;; wat2wasm: --enable-tail-call
;; Tail calls (a proposal wazero v1.12 accepts behind
;; experimental.CoreFeaturesTailCall): a loop-free tail recursion runs in a
;; constant stack, for ever if it likes; the caller of return_call and
;; return_call_indirect is instrumented.
(module
  (type $t (func (param i64 i64) (result i64)))
  (table 1 funcref)
  (elem (i32.const 0) $sum)
  (func $sum (export "sum") (type $t)
    (if (result i64) (i64.eqz (local.get 0))
      (then (local.get 1))
      (else (return_call $sum (i64.sub (local.get 0) (i64.const 1)) (i64.add (local.get 1) (local.get 0))))))
  (func (export "sum_indirect") (param i64) (result i64)
    (return_call_indirect (type $t) (local.get 0) (i64.const 0) (i32.const 0))))
