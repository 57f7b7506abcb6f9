;; Refused at load: neither sy_transform nor sy_collect.
(module
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1)))
