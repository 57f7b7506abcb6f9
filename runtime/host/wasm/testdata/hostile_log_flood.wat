;; Hostile: logs 60 KiB lines at error level without end.
(module
  (import "switchyard_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (memory.fill (i32.const 0) (i32.const 0x41) (i32.const 61440))
    (loop $again
      (call $log (i32.const 3) (i32.const 0) (i32.const 61440))
      (br $again))
    (i32.const 0)))
