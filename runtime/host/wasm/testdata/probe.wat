;; Calls one host import with arguments taken from its payload and emits the
;; import's result. The payload is five little-endian i32: the import (0 log,
;; 1 now, 2 config, 3 input, 4 input_time, 5 emit, 6 state_get, 7 state_set,
;; 8 state_delete, 9 fail) and its arguments a, b, c, d (unused ones are
;; ignored). The result (0 for log and fail) is emitted under the input's
;; subject as a little-endian i64. The call returns 0 even after fail.
(module
  (import "switchyard_v1" "log" (func $log (param i32 i32 i32)))
  (import "switchyard_v1" "now" (func $now (result i64)))
  (import "switchyard_v1" "config" (func $config (param i32 i32) (result i32)))
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "input_time" (func $input_time (result i64)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_set" (func $state_set (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_delete" (func $state_delete (param i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32) (local $r i64)
    (if (i32.lt_s (call $input (i32.const 0) (i32.const 0) (i32.const 20)) (i32.const 20))
      (then (return (i32.const 1))))
    (local.set $a (i32.load (i32.const 4)))
    (local.set $b (i32.load (i32.const 8)))
    (local.set $c (i32.load (i32.const 12)))
    (local.set $d (i32.load (i32.const 16)))
    (block $done
      (block $op9 (block $op8 (block $op7 (block $op6 (block $op5
      (block $op4 (block $op3 (block $op2 (block $op1 (block $op0
        (br_table $op0 $op1 $op2 $op3 $op4 $op5 $op6 $op7 $op8 $op9 $done (i32.load (i32.const 0))))
        (call $log (local.get $a) (local.get $b) (local.get $c))
        (br $done))
        (local.set $r (call $now))
        (br $done))
        (local.set $r (i64.extend_i32_s (call $config (local.get $a) (local.get $b))))
        (br $done))
        (local.set $r (i64.extend_i32_s (call $input (local.get $a) (local.get $b) (local.get $c))))
        (br $done))
        (local.set $r (call $input_time))
        (br $done))
        (local.set $r (i64.extend_i32_s (call $emit (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
        (br $done))
        (local.set $r (i64.extend_i32_s (call $state_get (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
        (br $done))
        (local.set $r (i64.extend_i32_s (call $state_set (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
        (br $done))
        (local.set $r (i64.extend_i32_s (call $state_delete (local.get $a) (local.get $b))))
        (br $done))
      (call $fail (local.get $a) (local.get $b)))
    (i64.store (i32.const 64) (local.get $r))
    (call $emit (i32.const 0) (i32.const 0) (i32.const 64) (i32.const 8))))
