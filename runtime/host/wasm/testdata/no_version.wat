;; Refused at load: no sy_abi_version.
(module
  (memory (export "memory") 1)
  (func (export "sy_transform") (result i32) (i32.const 0)))
