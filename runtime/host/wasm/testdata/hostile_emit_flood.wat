;; Hostile: emits without end, ignoring every refusal.
(module
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "flood")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (loop $again
      (drop (call $emit (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 5)))
      (br $again))
    (i32.const 0)))
