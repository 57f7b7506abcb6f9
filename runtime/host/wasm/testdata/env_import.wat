;; Refused at load: imports env.foo.
(module
  (import "env" "foo" (func $foo))
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32) (call $foo) (i32.const 0)))
