;; Refused at load: its memory is not exported.
(module
  (memory 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32) (i32.const 0)))
