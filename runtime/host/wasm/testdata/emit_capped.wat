;; A transform that emits its payload until emit refuses with -3 (a limit
;; of the call), then stops and returns 0, as sdk/ABI.md advises: what it
;; emitted before the refusal must be delivered.
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 0) (i32.const 0) (i32.const 1024)))
    (loop $again
      (br_if $again (i32.eqz (call $emit (i32.const 0) (i32.const 0) (i32.const 0) (local.get $n)))))
    (i32.const 0)))
