;; A transform that does what the first byte of its payload says:
;;   p  emit the payload (pass-through)
;;   i  increment the counter "n" in the instance's state and emit it (i32 LE)
;;   d  delete "n"
;;   u  trap (unreachable)
;;   l  loop forever
;;   g  grow memory a page at a time until refused, then fail with
;;      "memory.grow refused"
;;   f  emit the payload until emit refuses, then fail with "emit returned -3"
;;   S  store 100-byte values under new 4-byte keys until state_set refuses
;;      with -3, then emit "full"
;;   o  write "hello from stdout\n" to WASI stdout
;; anything else fails with "unknown op".
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_set" (func $state_set (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_delete" (func $state_delete (param i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "n")
  (data (i32.const 16) "memory.grow refused")
  (data (i32.const 48) "emit returned -3")
  (data (i32.const 80) "emit returned another status")
  (data (i32.const 112) "full")
  (data (i32.const 128) "hello from stdout\n")
  (data (i32.const 160) "unknown op")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (local $n i32) (local $op i32) (local $st i32) (local $i i32)
    (local.set $n (call $input (i32.const 0) (i32.const 1024) (i32.const 32768)))
    (local.set $op (i32.load8_u (i32.const 1024)))
    (if (i32.eq (local.get $op) (i32.const 0x70)) ;; p
      (then (return (call $emit (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $n)))))
    (if (i32.eq (local.get $op) (i32.const 0x69)) ;; i
      (then
        (i32.store (i32.const 256) (i32.const 0))
        (drop (call $state_get (i32.const 0) (i32.const 1) (i32.const 256) (i32.const 4)))
        (i32.store (i32.const 256) (i32.add (i32.load (i32.const 256)) (i32.const 1)))
        (local.set $st (call $state_set (i32.const 0) (i32.const 1) (i32.const 256) (i32.const 4)))
        (if (local.get $st) (then (return (local.get $st))))
        (return (call $emit (i32.const 0) (i32.const 0) (i32.const 256) (i32.const 4)))))
    (if (i32.eq (local.get $op) (i32.const 0x64)) ;; d
      (then (return (call $state_delete (i32.const 0) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 0x75)) ;; u
      (then (unreachable)))
    (if (i32.eq (local.get $op) (i32.const 0x6c)) ;; l
      (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $op) (i32.const 0x67)) ;; g
      (then
        (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (call $fail (i32.const 16) (i32.const 19))
        (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x66)) ;; f
      (then
        (loop $flood
          (local.set $st (call $emit (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $n)))
          (br_if $flood (i32.eqz (local.get $st))))
        (if (i32.eq (local.get $st) (i32.const -3))
          (then (call $fail (i32.const 48) (i32.const 16)))
          (else (call $fail (i32.const 80) (i32.const 28))))
        (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x53)) ;; S
      (then
        (loop $fill
          (i32.store (i32.const 300) (local.get $i))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (local.set $st (call $state_set (i32.const 300) (i32.const 4) (i32.const 400) (i32.const 100)))
          (br_if $fill (i32.eqz (local.get $st))))
        (if (i32.ne (local.get $st) (i32.const -3)) (then (return (local.get $st))))
        (return (call $emit (i32.const 0) (i32.const 0) (i32.const 112) (i32.const 4)))))
    (if (i32.eq (local.get $op) (i32.const 0x6f)) ;; o
      (then
        (i32.store (i32.const 192) (i32.const 128))
        (i32.store (i32.const 196) (i32.const 18))
        (return (call $fd_write (i32.const 1) (i32.const 192) (i32.const 1) (i32.const 200)))))
    (call $fail (i32.const 160) (i32.const 10))
    (i32.const 1)))
