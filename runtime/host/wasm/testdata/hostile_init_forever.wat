;; Hostile: sy_init never returns (the module compiles and its version check
;; passes; the instance cannot be made).
(module
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_init") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "sy_transform") (result i32) (i32.const 0)))
