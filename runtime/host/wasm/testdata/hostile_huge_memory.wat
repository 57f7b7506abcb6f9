;; Hostile: declares 4 GiB of initial memory.
(module
  (memory (export "memory") 65536)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32) (i32.const 0)))
