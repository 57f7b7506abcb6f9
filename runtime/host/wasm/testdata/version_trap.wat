;; Refused at load: sy_abi_version traps.
(module
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (unreachable))
  (func (export "sy_transform") (result i32) (i32.const 0)))
