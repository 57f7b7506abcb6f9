;; wat2wasm: --enable-threads
;; Atomic instructions (a proposal wazero v1.12 accepts behind
;; experimental.CoreFeaturesThreads), in a recursive function.
(module
  (memory 1 1 shared)
  (func $count (export "count") (param $n i32) (result i32)
    (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
    (atomic.fence)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.atomic.load (i32.const 0)))
      (else (call $count (i32.sub (local.get $n) (i32.const 1)))))))
