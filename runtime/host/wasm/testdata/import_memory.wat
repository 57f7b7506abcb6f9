;; Refused at load: imports its memory.
(module
  (import "env" "memory" (memory 1))
  (export "memory" (memory 0))
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32) (i32.const 0)))
