;; Fetches with http_fetch and emits the outcome. sy_transform sends its input
;; payload as the request JSON, sy_collect its configuration. A response is
;; emitted on subject "response" (the response JSON, read with http_response
;; into a buffer of the length http_fetch returned); a negative status on
;; subject "error", its payload the status as a little-endian i32 followed by
;; the text of http_error. Before fetching, every call checks that nothing is
;; kept from an earlier call (http_response and http_error return -1).
(module
  (import "switchyard_v1" "config" (func $config (param i32 i32) (result i32)))
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (import "switchyard_v1" "http_fetch" (func $http_fetch (param i32 i32) (result i32)))
  (import "switchyard_v1" "http_response" (func $http_response (param i32 i32) (result i32)))
  (import "switchyard_v1" "http_error" (func $http_error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "response")
  (data (i32.const 16) "error")
  (data (i32.const 32) "kept from an earlier call")
  (data (i32.const 64) "out of memory")
  (data (i32.const 80) "response length changed")
  ;; Requests, responses and reasons go from $buf to the end of memory.
  (global $buf i32 (i32.const 1024))

  (func (export "sy_abi_version") (result i32) (i32.const 1))

  ;; $room is the bytes from $buf to the end of memory.
  (func $room (result i32)
    (i32.sub (i32.mul (memory.size) (i32.const 65536)) (global.get $buf)))

  ;; $fit grows memory so that $n bytes fit at $buf; 0 when it cannot.
  (func $fit (param $n i32) (result i32)
    (local $room i32)
    (local.set $room (call $room))
    (if (i32.le_u (local.get $n) (local.get $room)) (then (return (i32.const 1))))
    (i32.ne
      (memory.grow (i32.shr_u
        (i32.add (i32.sub (local.get $n) (local.get $room)) (i32.const 65535)) (i32.const 16)))
      (i32.const -1)))

  (func $oom (result i32)
    (call $fail (i32.const 64) (i32.const 13))
    (i32.const 1))

  ;; $fetch sends the request at [$buf, $buf+$len) and emits the outcome.
  (func $fetch (param $len i32) (result i32)
    (local $st i32) (local $n i32)
    (if (i32.or (i32.ne (call $http_response (i32.const 0) (i32.const 0)) (i32.const -1))
                (i32.ne (call $http_error (i32.const 0) (i32.const 0)) (i32.const -1)))
      (then (call $fail (i32.const 32) (i32.const 25)) (return (i32.const 1))))
    (local.set $st (call $http_fetch (global.get $buf) (local.get $len)))
    (if (i32.lt_s (local.get $st) (i32.const 0))
      (then
        (local.set $n (call $http_error
          (i32.add (global.get $buf) (i32.const 4)) (i32.sub (call $room) (i32.const 4))))
        (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
        (if (i32.gt_u (local.get $n) (i32.sub (call $room) (i32.const 4)))
          (then
            (if (i32.eqz (call $fit (i32.add (local.get $n) (i32.const 4))))
              (then (return (call $oom))))
            (drop (call $http_error (i32.add (global.get $buf) (i32.const 4)) (local.get $n)))))
        (i32.store (global.get $buf) (local.get $st))
        (return (call $emit (i32.const 16) (i32.const 5)
          (global.get $buf) (i32.add (local.get $n) (i32.const 4))))))
    (if (i32.eqz (call $fit (local.get $st))) (then (return (call $oom))))
    (if (i32.ne (call $http_response (global.get $buf) (local.get $st)) (local.get $st))
      (then (call $fail (i32.const 80) (i32.const 23)) (return (i32.const 1))))
    (call $emit (i32.const 0) (i32.const 8) (global.get $buf) (local.get $st)))

  (func (export "sy_transform") (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 0) (global.get $buf) (call $room)))
    (if (i32.gt_u (local.get $n) (call $room))
      (then
        (if (i32.eqz (call $fit (local.get $n))) (then (return (call $oom))))
        (drop (call $input (i32.const 0) (global.get $buf) (local.get $n)))))
    (call $fetch (local.get $n)))

  (func (export "sy_collect") (result i32)
    (local $n i32)
    (local.set $n (call $config (global.get $buf) (call $room)))
    (if (i32.gt_u (local.get $n) (call $room))
      (then
        (if (i32.eqz (call $fit (local.get $n))) (then (return (call $oom))))
        (drop (call $config (global.get $buf) (local.get $n)))))
    (call $fetch (local.get $n))))
