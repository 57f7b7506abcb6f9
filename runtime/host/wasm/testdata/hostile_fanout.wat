;; Hostile: sy_transform runs a call tree without loops or recursion that
;; fans out: each function calls the next 16 times, 9 deep: 16^8 calls of
;; the leaf, tens of seconds of work, and wazero checks for the deadline at
;; loop headers only.
(module
  (memory (export "memory") 1)
  (func $f9 (param i64) (result i64)
    (i64.xor (i64.mul (local.get 0) (i64.const 0x9e3779b97f4a7c15)) (i64.const 7)))
  (func $f8 (param i64) (result i64)
    (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (call $f9 (local.get 0))))))))))))))))))
  (func $f7 (param i64) (result i64)
    (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (call $f8 (local.get 0))))))))))))))))))
  (func $f6 (param i64) (result i64)
    (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (call $f7 (local.get 0))))))))))))))))))
  (func $f5 (param i64) (result i64)
    (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (call $f6 (local.get 0))))))))))))))))))
  (func $f4 (param i64) (result i64)
    (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (call $f5 (local.get 0))))))))))))))))))
  (func $f3 (param i64) (result i64)
    (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (call $f4 (local.get 0))))))))))))))))))
  (func $f2 (param i64) (result i64)
    (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (call $f3 (local.get 0))))))))))))))))))
  (func $f1 (param i64) (result i64)
    (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (call $f2 (local.get 0))))))))))))))))))
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (drop (call $f1 (i64.const 1)))
    (i32.const 0)))
