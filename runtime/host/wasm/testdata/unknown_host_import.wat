;; Refused at load: imports a switchyard_v1 function that ABI v1 lacks.
(module
  (import "switchyard_v1" "tcp_connect" (func $connect (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32) (call $connect (i32.const 0) (i32.const 0))))
