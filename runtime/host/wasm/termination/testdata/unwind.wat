;; A recursion whose frames do their work on the way back, after the
;; recursive call: the check after that call is what stops it as it
;; unwinds.
(module
  (func $r (export "r") (param $n i32) (param $x i64) (result i64)
    (if (result i64) (i32.eqz (local.get $n))
      (then (local.get $x))
      (else
        (local.set $x (call $r (i32.sub (local.get $n) (i32.const 1)) (local.get $x)))
        (i64.xor (i64.mul (local.get $x) (i64.const 31)) (i64.extend_i32_u (local.get $n)))))))
