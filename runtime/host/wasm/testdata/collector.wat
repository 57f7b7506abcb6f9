;; A collector: each sy_collect counts its calls in the instance's state
;; (key "n", a little-endian i32) and emits the count on subject "tick". It
;; fails with "input in scope" unless input returns -1 and input_time the
;; call's time (not 0).
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "input_time" (func $input_time (result i64)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_set" (func $state_set (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "n")
  (data (i32.const 8) "tick")
  (data (i32.const 16) "input in scope")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_collect") (result i32)
    (local $st i32)
    (if (i32.or (i32.ne (call $input (i32.const 0) (i32.const 64) (i32.const 0)) (i32.const -1))
                (i64.eqz (call $input_time)))
      (then (call $fail (i32.const 16) (i32.const 14)) (return (i32.const 1))))
    (i32.store (i32.const 32) (i32.const 0))
    ;; absent (-1) leaves 0 at 32: the count starts from 0
    (drop (call $state_get (i32.const 0) (i32.const 1) (i32.const 32) (i32.const 4)))
    (i32.store (i32.const 32) (i32.add (i32.load (i32.const 32)) (i32.const 1)))
    (local.set $st (call $state_set (i32.const 0) (i32.const 1) (i32.const 32) (i32.const 4)))
    (if (local.get $st) (then (return (local.get $st))))
    (call $emit (i32.const 8) (i32.const 4) (i32.const 32) (i32.const 4))))
