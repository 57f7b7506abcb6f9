;; Refused at load: imports switchyard_v1.emit with the wrong signature.
(module
  (import "switchyard_v1" "emit" (func $emit (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32) (call $emit (i32.const 0))))
