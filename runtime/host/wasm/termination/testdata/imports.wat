;; Imported functions come first in the function index space: the
;; recursive function is function 2, and calls to the imports are host
;; calls, not recursion.
(module
  (import "env" "double" (func $double (param i32) (result i32)))
  (import "env" "trace" (func $trace (param i32)))
  (func $sum (export "sum") (param $n i32) (result i32)
    (call $trace (local.get $n))
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (call $double (local.get $n)) (call $sum (i32.sub (local.get $n) (i32.const 1)))))))
  (func (export "twice") (param i32) (result i32) (call $double (local.get 0))))
