;; Reads the input payload and emits it 64 times in one call: the cost of
;; the per-message imports (input, emit) without the per-call entry, to
;; tell what batching several messages into one call could save.
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $n i32) (local $i i32)
    (loop $next
      (local.set $n (call $input (i32.const 0) (i32.const 1024) (i32.const 65536)))
      (drop (call $emit (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (i32.const 64))))
    (i32.const 0)))
