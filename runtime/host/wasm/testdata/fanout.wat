;; A transform whose payload's first byte says how many copies of the
;; payload to emit ("0", "1", "3"), under subjects out.0, out.1, …; a payload
;; starting with "f" emits one message and then fails with "asked to fail".
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "out.0")
  (data (i32.const 16) "asked to fail")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $n i32) (local $i i32) (local $st i32)
    (local.set $n (call $input (i32.const 0) (i32.const 256) (i32.const 1024)))
    (if (i32.eq (i32.load8_u (i32.const 256)) (i32.const 0x66)) ;; f
      (then
        (drop (call $emit (i32.const 0) (i32.const 5) (i32.const 256) (local.get $n)))
        (call $fail (i32.const 16) (i32.const 13))
        (return (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.sub (i32.load8_u (i32.const 256)) (i32.const 0x30))))
        (i32.store8 (i32.const 4) (i32.add (i32.const 0x30) (local.get $i)))
        (local.set $st (call $emit (i32.const 0) (i32.const 5) (i32.const 256) (local.get $n)))
        (if (local.get $st) (then (return (local.get $st))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
