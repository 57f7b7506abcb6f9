;; Instructions of every WebAssembly 2.0 feature wazero accepts by
;; default, in a recursive function so that the module is instrumented:
;; SIMD (sub-opcodes of one and two bytes, memory arguments, lanes,
;; v128.const, i8x16.shuffle), bulk memory (with a data count section),
;; reference types (tables, ref.*, typed select), multi-value blocks,
;; sign extension, non-trapping float-to-int, br_table.
(module
  (type $pair (func (param i32) (result i32 i32)))
  (memory 1)
  (table $t 4 funcref)
  (data $d "0123456789abcdef")
  (elem declare func $simd)

  (func $simd (export "simd") (param $x i32) (result i32)
    (local $v v128)
    (local.set $v (v128.const i32x4 1 2 3 4))
    (local.set $v (i32x4.replace_lane 1 (local.get $v) (local.get $x)))
    (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
    (local.set $v (i16x8.add (local.get $v) (local.get $v)))          ;; 0xfd 0x8e 0x01
    (local.set $v (i32x4.mul (local.get $v) (i32x4.splat (i32.const 3))))
    (local.set $v (i16x8.q15mulr_sat_s (local.get $v) (local.get $v)))
    (local.set $v (i8x16.popcnt (local.get $v)))
    (local.set $v (i32x4.dot_i16x8_s (local.get $v) (local.get $v)))
    (local.set $v (i32x4.trunc_sat_f32x4_s (f32x4.convert_i32x4_s (local.get $v))))
    (local.set $v (f64x2.add (f64x2.splat (f64.const 1.5)) (local.get $v)))
    (v128.store offset=16 (i32.const 0) (local.get $v))
    (local.set $v (v128.load offset=16 (i32.const 0)))
    (local.set $v (v128.load32_lane 2 (i32.const 4) (local.get $v)))
    (v128.store8_lane 3 (i32.const 40) (local.get $v))
    (local.set $v (v128.load32_zero (i32.const 40)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $v)) (i64x2.all_true (local.get $v)))
      (i8x16.extract_lane_u 15 (i64x2.replace_lane 1 (local.get $v) (i64.const -1)))))

  (func $bulk (export "bulk") (result i32)
    (memory.init $d (i32.const 100) (i32.const 2) (i32.const 8))
    (data.drop $d)
    (memory.copy (i32.const 200) (i32.const 100) (i32.const 8))
    (memory.fill (i32.const 204) (i32.const 65) (i32.const 2))
    (i32.add (i32.load (i32.const 200)) (i32.load (i32.const 204))))

  (func $refs (export "refs") (result i32)
    (local $old i32)
    (local.set $old (table.grow $t (ref.null func) (i32.const 2)))
    (table.set $t (i32.const 1) (ref.func $simd))
    (table.fill $t (i32.const 2) (ref.func $simd) (i32.const 2))
    (i32.add
      (i32.add (local.get $old) (table.size $t))
      (i32.add
        (ref.is_null (table.get $t (i32.const 0)))
        (select (result i32) (i32.const 10) (i32.const 20) (ref.is_null (table.get $t (i32.const 3)))))))

  (func $multi (export "multi") (param $x i32) (result i32)
    (local $a i32)
    (local.get $x)
    (block (type $pair) (param i32) (result i32 i32)
      (local.set $a)
      (block $done
        (block $two
          (block $one
            (block $zero
              (br_table $zero $one $two (local.get $a)))
            (local.set $a (i32.const 100))
            (br $done))
          (local.set $a (i32.const 200))
          (br $done))
        (local.set $a (i32.const 300)))
      (i32.extend8_s (local.get $a))
      (i32.wrap_i64 (i64.extend32_s (i64.const 0x1_8000_0001))))
    (i32.add)
    (i32.add (i32.trunc_sat_f64_u (f64.const -3.5))))

  ;; Recursion over all of the above.
  (func $rec (export "rec") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.add (i32.add (call $simd (i32.const 5)) (call $bulk))
                     (i32.add (call $refs) (call $multi (i32.const 3)))))
      (else (i32.add (local.get $n) (call $rec (i32.sub (local.get $n) (i32.const 1))))))))
