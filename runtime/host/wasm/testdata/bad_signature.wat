;; Refused at load: sy_transform takes a parameter.
(module
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (param i32) (result i32) (i32.const 0)))
