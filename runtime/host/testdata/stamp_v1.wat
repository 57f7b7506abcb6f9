;; A transform that says which version of it ran: it wraps the input
;; payload as {"v":1,"in":<payload>} under the input's subject. Versions 1
;; and 2 differ in that digit only; the hot-load tests swap one for the
;; other under traffic and check which one handled every message.
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "payload too large")
  ;; the 12-byte prefix ends where the payload is read
  (data (i32.const 1012) "{\"v\":1,\"in\":")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 0) (i32.const 1024) (i32.const 65535)))
    (if (i32.gt_s (local.get $n) (i32.const 65535))
      (then (call $fail (i32.const 0) (i32.const 17)) (return (i32.const 1))))
    (i32.store8 (i32.add (i32.const 1024) (local.get $n)) (i32.const 125)) ;; '}'
    (call $emit (i32.const 0) (i32.const 0) (i32.const 1012) (i32.add (local.get $n) (i32.const 13)))))
