;; transforms.changed — report on change, in hand-written WAT.
;;
;; Passes a message on only when its payload differs from the last one seen
;; on the same subject: a sensor that repeats the same reading every second
;; reaches its junction's targets once, and again when the reading changes.
;; It keeps, per subject, the 64-bit FNV-1a hash of the last payload in the
;; instance's state (state_get / state_set of sdk/ABI.md), so it takes no
;; configuration (any option is refused, by name) and no memory beyond its
;; two pages.
;;
;; Memory: [0, 1024) the subject, [1024, 1032) the new hash, [1032, 1040)
;; the stored hash, [1040, 1150) messages, [1150, 2046) the configuration,
;; [2048, 67584) the payload.
(module
  (import "switchyard_v1" "config" (func $config (param i32 i32) (result i32)))
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "state_set" (func $state_set (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 1040) "payload over 64 KiB")                ;; 19 bytes
  (data (i32.const 1060) "subject over 1 KiB")                 ;; 18 bytes
  (data (i32.const 1080) "state full: too many subjects")      ;; 29 bytes
  (data (i32.const 1120) "config: takes no options, got ")     ;; 30 bytes

  (func (export "sy_abi_version") (result i32) (i32.const 1))

  ;; sy_init accepts only the empty configuration, {}; otherwise the refusal
  ;; quotes the configuration (its first 896 bytes), so it names the option.
  (func (export "sy_init") (result i32)
    (local $n i32)
    (local.set $n (call $config (i32.const 1150) (i32.const 896)))
    (if (i32.and (i32.eq (local.get $n) (i32.const 2))
                 (i32.eq (i32.load16_u (i32.const 1150)) (i32.const 0x7d7b))) ;; "{}"
      (then (return (i32.const 0))))
    (call $fail (i32.const 1120)
      (i32.add (i32.const 30)
        (select (local.get $n) (i32.const 896) (i32.le_u (local.get $n) (i32.const 896)))))
    (i32.const 1))

  ;; fnv1a returns the 64-bit FNV-1a hash of [ptr, ptr+len).
  (func $fnv1a (param $ptr i32) (param $len i32) (result i64)
    (local $h i64) (local $end i32)
    (local.set $h (i64.const 0xcbf29ce484222325))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (local.set $h (i64.mul
          (i64.xor (local.get $h) (i64.extend_i32_u (i32.load8_u (local.get $ptr))))
          (i64.const 0x100000001b3)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $next)))
    (local.get $h))

  (func (export "sy_transform") (result i32)
    (local $n i32) (local $s i32) (local $got i32)
    (local.set $n (call $input (i32.const 0) (i32.const 2048) (i32.const 65536)))
    (if (i32.gt_s (local.get $n) (i32.const 65536))
      (then (call $fail (i32.const 1040) (i32.const 19)) (return (i32.const 1))))
    (local.set $s (call $input (i32.const 1) (i32.const 0) (i32.const 1024)))
    (if (i32.gt_s (local.get $s) (i32.const 1024))
      (then (call $fail (i32.const 1060) (i32.const 18)) (return (i32.const 1))))
    (i64.store (i32.const 1024) (call $fnv1a (i32.const 2048) (local.get $n)))
    (local.set $got (call $state_get (i32.const 0) (local.get $s) (i32.const 1032) (i32.const 8)))
    (if (i32.and (i32.eq (local.get $got) (i32.const 8))
                 (i64.eq (i64.load (i32.const 1032)) (i64.load (i32.const 1024))))
      (then (return (i32.const 0)))) ;; unchanged: no output
    (if (i32.ne (call $state_set (i32.const 0) (local.get $s) (i32.const 1024) (i32.const 8)) (i32.const 0))
      (then (call $fail (i32.const 1080) (i32.const 29)) (return (i32.const 1))))
    ;; the input's subject (length 0), the payload as it came
    (call $emit (i32.const 0) (i32.const 0) (i32.const 2048) (local.get $n))))
