;; Hostile: blocks inside a host call, fetching from a server that never
;; answers (the test's): the request JSON is the input payload. Should the
;; fetch come back (refused, failed), the call fails too: it is never a
;; success.
(module
  (import "switchyard_v1" "input" (func $input (param i32 i32 i32) (result i32)))
  (import "switchyard_v1" "http_fetch" (func $http_fetch (param i32 i32) (result i32)))
  (import "switchyard_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "the fetch came back")
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (drop (call $http_fetch (i32.const 1024) (call $input (i32.const 0) (i32.const 1024) (i32.const 4096))))
    (call $fail (i32.const 0) (i32.const 19))
    (i32.const 1)))
