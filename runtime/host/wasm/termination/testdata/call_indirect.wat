;; Calls through a table: the target is unknown, so the caller is
;; instrumented; the targets, not recursive, are not.
(module
  (type $op (func (param i32 i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $add $mul)
  (func $add (type $op) (i32.add (local.get 0) (local.get 1)))
  (func $mul (type $op) (i32.mul (local.get 0) (local.get 1)))
  (func (export "apply") (param $which i32) (param $a i32) (param $b i32) (result i32)
    (call_indirect (type $op) (local.get $a) (local.get $b) (local.get $which))))
