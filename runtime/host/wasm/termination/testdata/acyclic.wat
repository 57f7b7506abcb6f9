;; A chain of calls without a cycle: nothing to instrument.
(module
  (func $c (param i32) (result i32) (i32.add (local.get 0) (i32.const 3)))
  (func $b (param i32) (result i32) (i32.mul (call $c (local.get 0)) (i32.const 2)))
  (func (export "a") (param i32) (result i32) (i32.sub (call $b (local.get 0)) (i32.const 1))))
