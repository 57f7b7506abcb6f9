;; Hostile: grows its memory past any cap, ignores the refusal and writes
;; far past its end.
(module
  (memory (export "memory") 1)
  (func (export "sy_abi_version") (result i32) (i32.const 1))
  (func (export "sy_transform") (result i32)
    (drop (memory.grow (i32.const 16384))) ;; 1 GiB more: refused under any sane cap
    (i32.store (i32.const 0x3FFFFFF0) (i32.const 1))
    (i32.const 0)))
