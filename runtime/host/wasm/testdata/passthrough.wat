;; A pass-through transform: emits the input payload under the input's
;; subject. The benchmark module: one input and one emit call per message.
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "payload too large")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 0) (i32.const 1024) (i32.const 65536)))
    (if (i32.gt_s (local.get $n) (i32.const 65536))
      (then (call $fail (i32.const 0) (i32.const 17)) (return (i32.const 1))))
    ;; the status of emit is the result: non-zero fails the call
    (call $emit (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $n))))
