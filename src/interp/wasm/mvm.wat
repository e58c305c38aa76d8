;; The noise-free quantized MVM (QuantizedCrossbar.mvm in src/interp/crossbar.ts) as a
;; WebAssembly kernel. The JavaScript kernel spends most of its time in the DAC and ADC
;; conversions (a division and an exact rounding per row, three divisions and a rounding per
;; column); here two rows or two columns share each f64x2 instruction. Every lane performs
;; the float64 operations of the JavaScript kernel, in the same order, with the same IEEE
;; results (wasm min/max treat NaN and signed zeros like Math.min/max, f32 demotion rounds
;; like Math.fround), so outputs are bit for bit those of the JavaScript kernel
;; (test/interp-wasm.test.ts). scripts/gen-wasm.mjs compiles this file to
;; src/interp/wasm/mvm-module.ts.
;;
;; All pointers are byte offsets into the machine's memory (src/interp/wasm/arena.ts): the
;; tile's local memory (float32 words), the crossbar's ranges (float32), its weight levels
;; (int16, row-major), its nonzero cells column by column (i32 column starts and rows,
;; float64 levels; cptr = 0 when the crossbar is stored dense) and two float64 scratch arrays.
(module
  (memory (import "env" "memory") 1)

  ;; clamp(roundHalfAway(t), -M, M), as crossbar.ts roundClamp: +-0 and NaN are returned as
  ;; they are; otherwise t is clamped to +-(M + 1), i = trunc(c), and trunc(2c - 2i) (exact:
  ;; 2 frac(c)) is +-1 exactly when |frac(c)| >= 1/2.
  (func $roundClamp (param $t f64) (param $M f64) (result f64)
    (local $c f64) (local $i f64)
    (if (i32.or (f64.ne (local.get $t) (local.get $t)) (f64.eq (local.get $t) (f64.const 0)))
      (then (return (local.get $t))))
    (local.set $c (f64.max (f64.sub (f64.neg (local.get $M)) (f64.const 1))
                           (f64.min (f64.add (local.get $M) (f64.const 1)) (local.get $t))))
    (local.set $i (f64.trunc (local.get $c)))
    (f64.max (f64.neg (local.get $M))
      (f64.min (local.get $M)
        (f64.add (local.get $i)
          (f64.trunc (f64.sub (f64.mul (f64.const 2) (local.get $c)) (f64.mul (f64.const 2) (local.get $i))))))))

  ;; One MVM over the window (rowStart, rows, colStart, cols): reads rows float32 words at src,
  ;; writes (acc: adds to) cols float32 words at dst; returns the number of ADC saturations.
  (func (export "mvm")
    (param $inRange i32) (param $colScale i32) (param $outRange i32) (param $levels i32)
    (param $colPtr i32) (param $cellRow i32) (param $cellVal i32) (param $stride i32)
    (param $D f64) (param $Q f64)
    (param $src i32) (param $dst i32) (param $rowStart i32) (param $rows i32) (param $colStart i32) (param $cols i32)
    (param $acc i32) (param $codes i32) (param $sums i32)
    (result i32)
    (local $r i32) (local $j i32) (local $k i32) (local $end i32) (local $p i32) (local $col i32)
    (local $rr i32) (local $base i32) (local $nan i32) (local $sat i32)
    (local $c f64) (local $s f64) (local $v f64) (local $range f64) (local $y f64)
    (local $cv v128) (local $vv v128) (local $rg v128) (local $yv v128) (local $over v128)
    ;; The two-lane roundClamp, written out at its two uses (it is the hot path, and a call
    ;; passing v128 values is not inlined): as $roundClamp per lane, lanes holding +-0 or NaN
    ;; keep t. 2c and 2i are formed as c + c and i + i (the same values).
    (local $t2 v128) (local $c2 v128) (local $i2 v128) (local $m2 v128)
    (local $one2 v128) (local $zero2 v128)
    (local.set $one2 (f64x2.splat (f64.const 1)))

    ;; DAC: codes[r] = roundClamp(x_r / inRange[rowStart + r] * D, D), two rows at a time.
    (block $pairsDone (loop $pairs
      (br_if $pairsDone (i32.gt_s (i32.add (local.get $r) (i32.const 2)) (local.get $rows)))
      (local.set $cv (block (result v128)
        (local.set $t2 (f64x2.mul
          (f64x2.div
            (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $src) (i32.shl (local.get $r) (i32.const 2)))))
            (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $inRange) (i32.shl (i32.add (local.get $rowStart) (local.get $r)) (i32.const 2))))))
          (f64x2.splat (local.get $D))))
        (local.set $m2 (f64x2.splat (local.get $D)))
        (local.set $c2 (f64x2.max (f64x2.sub (f64x2.neg (local.get $m2)) (local.get $one2))
                                  (f64x2.min (f64x2.add (local.get $m2) (local.get $one2)) (local.get $t2))))
        (local.set $i2 (f64x2.trunc (local.get $c2)))
        (v128.bitselect (local.get $t2)
          (f64x2.max (f64x2.neg (local.get $m2))
            (f64x2.min (local.get $m2)
              (f64x2.add (local.get $i2)
                (f64x2.trunc (f64x2.sub (f64x2.add (local.get $c2) (local.get $c2)) (f64x2.add (local.get $i2) (local.get $i2)))))))
          (v128.or (f64x2.ne (local.get $t2) (local.get $t2)) (f64x2.eq (local.get $t2) (local.get $zero2))))))
      (v128.store (i32.add (local.get $codes) (i32.shl (local.get $r) (i32.const 3))) (local.get $cv))
      (local.set $nan (i32.or (local.get $nan) (v128.any_true (f64x2.ne (local.get $cv) (local.get $cv)))))
      (local.set $r (i32.add (local.get $r) (i32.const 2)))
      (br $pairs)))
    (block $rowsDone (loop $rowLoop
      (br_if $rowsDone (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $c (call $roundClamp
        (f64.mul
          (f64.div
            (f64.promote_f32 (f32.load (i32.add (local.get $src) (i32.shl (local.get $r) (i32.const 2)))))
            (f64.promote_f32 (f32.load (i32.add (local.get $inRange) (i32.shl (i32.add (local.get $rowStart) (local.get $r)) (i32.const 2))))))
          (local.get $D))
        (local.get $D)))
      (f64.store (i32.add (local.get $codes) (i32.shl (local.get $r) (i32.const 3))) (local.get $c))
      (local.set $nan (i32.or (local.get $nan) (f64.ne (local.get $c) (local.get $c))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rowLoop)))

    (if (i32.and (i32.ne (local.get $colPtr) (i32.const 0)) (i32.eqz (local.get $nan)))
      (then
        ;; Sparse: each column's nonzero cells in ascending row order, rows outside the window skipped.
        (block $colsDone (loop $colLoop
          (br_if $colsDone (i32.ge_s (local.get $j) (local.get $cols)))
          (local.set $p (i32.add (local.get $colPtr) (i32.shl (i32.add (local.get $colStart) (local.get $j)) (i32.const 2))))
          (local.set $k (i32.load (local.get $p)))
          (local.set $end (i32.load offset=4 (local.get $p)))
          (local.set $s (f64.const 0))
          (block $cellsDone (loop $cellLoop
            (br_if $cellsDone (i32.ge_s (local.get $k) (local.get $end)))
            (local.set $rr (i32.sub (i32.load (i32.add (local.get $cellRow) (i32.shl (local.get $k) (i32.const 2)))) (local.get $rowStart)))
            (if (i32.lt_u (local.get $rr) (local.get $rows))
              (then (local.set $s (f64.add (local.get $s)
                (f64.mul (f64.load (i32.add (local.get $codes) (i32.shl (local.get $rr) (i32.const 3))))
                         (f64.load (i32.add (local.get $cellVal) (i32.shl (local.get $k) (i32.const 3)))))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $cellLoop)))
          (f64.store (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))) (local.get $s))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $colLoop))))
      (else
        ;; Dense (also whenever a code is NaN: NaN * 0 reaches every column): rows with code 0 draw no current.
        (block $zeroDone (loop $zeroLoop
          (br_if $zeroDone (i32.ge_s (local.get $j) (local.get $cols)))
          (f64.store (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))) (f64.const 0))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $zeroLoop)))
        (local.set $r (i32.const 0))
        (block $denseDone (loop $denseRows
          (br_if $denseDone (i32.ge_s (local.get $r) (local.get $rows)))
          (local.set $c (f64.load (i32.add (local.get $codes) (i32.shl (local.get $r) (i32.const 3)))))
          (if (f64.ne (local.get $c) (f64.const 0))
            (then
              (local.set $base (i32.add (local.get $levels)
                (i32.shl (i32.add (i32.mul (i32.add (local.get $rowStart) (local.get $r)) (local.get $stride)) (local.get $colStart)) (i32.const 1))))
              (local.set $j (i32.const 0))
              (block $denseColsDone (loop $denseCols
                (br_if $denseColsDone (i32.ge_s (local.get $j) (local.get $cols)))
                (local.set $p (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))))
                (f64.store (local.get $p)
                  (f64.add (f64.load (local.get $p))
                    (f64.mul (local.get $c) (f64.convert_i32_s (i32.load16_s (i32.add (local.get $base) (i32.shl (local.get $j) (i32.const 1))))))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $denseCols)))))
          (local.set $r (i32.add (local.get $r) (i32.const 1)))
          (br $denseRows)))))

    ;; ADC: v = s * colScale / D; |v| > range counts a saturation;
    ;; y = roundClamp(v / range * Q, Q) * range / Q, stored (or added) in float32. Two columns at a time.
    (local.set $j (i32.const 0))
    (block $outPairsDone (loop $outPairs
      (br_if $outPairsDone (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $cols)))
      (local.set $col (i32.add (local.get $colStart) (local.get $j)))
      (local.set $vv (f64x2.div
        (f64x2.mul (v128.load (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))))
                   (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $colScale) (i32.shl (local.get $col) (i32.const 2))))))
        (f64x2.splat (local.get $D))))
      (local.set $rg (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $outRange) (i32.shl (local.get $col) (i32.const 2))))))
      ;; A true comparison lane is all ones (-1): subtracting the two lanes counts them.
      (local.set $over (f64x2.gt (f64x2.abs (local.get $vv)) (local.get $rg)))
      (local.set $sat (i32.sub (i32.sub (local.get $sat)
        (i32.wrap_i64 (i64x2.extract_lane 0 (local.get $over))))
        (i32.wrap_i64 (i64x2.extract_lane 1 (local.get $over)))))
      (local.set $yv (f64x2.div
        (f64x2.mul (block (result v128)
        (local.set $t2 (f64x2.mul (f64x2.div (local.get $vv) (local.get $rg)) (f64x2.splat (local.get $Q))))
        (local.set $m2 (f64x2.splat (local.get $Q)))
        (local.set $c2 (f64x2.max (f64x2.sub (f64x2.neg (local.get $m2)) (local.get $one2))
                                  (f64x2.min (f64x2.add (local.get $m2) (local.get $one2)) (local.get $t2))))
        (local.set $i2 (f64x2.trunc (local.get $c2)))
        (v128.bitselect (local.get $t2)
          (f64x2.max (f64x2.neg (local.get $m2))
            (f64x2.min (local.get $m2)
              (f64x2.add (local.get $i2)
                (f64x2.trunc (f64x2.sub (f64x2.add (local.get $c2) (local.get $c2)) (f64x2.add (local.get $i2) (local.get $i2)))))))
          (v128.or (f64x2.ne (local.get $t2) (local.get $t2)) (f64x2.eq (local.get $t2) (local.get $zero2)))))
                   (local.get $rg))
        (f64x2.splat (local.get $Q))))
      (local.set $p (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))))
      (if (local.get $acc)
        (then (local.set $yv (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p))) (local.get $yv)))))
      (v128.store64_lane 0 (local.get $p) (f32x4.demote_f64x2_zero (local.get $yv)))
      (local.set $j (i32.add (local.get $j) (i32.const 2)))
      (br $outPairs)))
    (block $outDone (loop $outLoop
      (br_if $outDone (i32.ge_s (local.get $j) (local.get $cols)))
      (local.set $col (i32.add (local.get $colStart) (local.get $j)))
      (local.set $v (f64.div
        (f64.mul (f64.load (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))))
                 (f64.promote_f32 (f32.load (i32.add (local.get $colScale) (i32.shl (local.get $col) (i32.const 2))))))
        (local.get $D)))
      (local.set $range (f64.promote_f32 (f32.load (i32.add (local.get $outRange) (i32.shl (local.get $col) (i32.const 2))))))
      (local.set $sat (i32.add (local.get $sat) (f64.gt (f64.abs (local.get $v)) (local.get $range))))
      (local.set $y (f64.div
        (f64.mul (call $roundClamp (f64.mul (f64.div (local.get $v) (local.get $range)) (local.get $Q)) (local.get $Q)) (local.get $range))
        (local.get $Q)))
      (local.set $p (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))))
      (if (local.get $acc)
        (then (f32.store (local.get $p) (f32.demote_f64 (f64.add (f64.promote_f32 (f32.load (local.get $p))) (local.get $y)))))
        (else (f32.store (local.get $p) (f32.demote_f64 (local.get $y)))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $outLoop)))
    (local.get $sat))

  ;; The analog column sums of a noisy crossbar without IR drop (NoisyCrossbar.mvm in
  ;; src/interp/crossbar.ts): sums[j] = sum over window rows r with volts[r] != 0, ascending, of
  ;; volts[r] * weight[rowStart + r][colStart + j], and with read noise (readVar != 0)
  ;; vars[j] = the same sum of volts[r]^2 * readVar[..]. Two columns per f64x2 instruction,
  ;; each lane adding its own column's terms in the JavaScript loop's order. volts, sums and
  ;; vars are float64, weight and readVar float32 (row-major, `stride` columns).
  (func (export "noisySums")
    (param $volts i32) (param $weight i32) (param $readVar i32) (param $stride i32)
    (param $rowStart i32) (param $rows i32) (param $colStart i32) (param $cols i32)
    (param $sums i32) (param $vars i32)
    (local $r i32) (local $j i32) (local $v f64) (local $v2 f64) (local $w i32) (local $rv i32) (local $p i32) (local $q i32)
    (local $vv v128) (local $vv2 v128)
    (block $zeroDone (loop $zero
      (br_if $zeroDone (i32.ge_s (local.get $j) (local.get $cols)))
      (f64.store (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))) (f64.const 0))
      (if (local.get $readVar) (then (f64.store (i32.add (local.get $vars) (i32.shl (local.get $j) (i32.const 3))) (f64.const 0))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $zero)))
    (block $rowsDone (loop $rowLoop
      (br_if $rowsDone (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $v (f64.load (i32.add (local.get $volts) (i32.shl (local.get $r) (i32.const 3)))))
      ;; a row at 0 V draws no current and adds no read noise
      (if (f64.ne (local.get $v) (f64.const 0))
        (then
          (local.set $w (i32.shl (i32.add (i32.mul (i32.add (local.get $rowStart) (local.get $r)) (local.get $stride)) (local.get $colStart)) (i32.const 2)))
          (local.set $rv (i32.add (local.get $readVar) (local.get $w)))
          (local.set $w (i32.add (local.get $weight) (local.get $w)))
          (local.set $vv (f64x2.splat (local.get $v)))
          (local.set $v2 (f64.mul (local.get $v) (local.get $v)))
          (local.set $vv2 (f64x2.splat (local.get $v2)))
          (local.set $j (i32.const 0))
          (if (i32.eqz (local.get $readVar))
            (then
              (block $pairsDone (loop $pairs
                (br_if $pairsDone (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $cols)))
                (local.set $p (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))))
                (v128.store (local.get $p) (f64x2.add (v128.load (local.get $p))
                  (f64x2.mul (local.get $vv) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2))))))))
                (local.set $j (i32.add (local.get $j) (i32.const 2)))
                (br $pairs))))
            (else
              (block $pairsVarDone (loop $pairsVar
                (br_if $pairsVarDone (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $cols)))
                (local.set $p (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))))
                (v128.store (local.get $p) (f64x2.add (v128.load (local.get $p))
                  (f64x2.mul (local.get $vv) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2))))))))
                (local.set $q (i32.add (local.get $vars) (i32.shl (local.get $j) (i32.const 3))))
                (v128.store (local.get $q) (f64x2.add (v128.load (local.get $q))
                  (f64x2.mul (local.get $vv2) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $rv) (i32.shl (local.get $j) (i32.const 2))))))))
                (local.set $j (i32.add (local.get $j) (i32.const 2)))
                (br $pairsVar)))))
          ;; the odd last column
          (if (i32.lt_s (local.get $j) (local.get $cols))
            (then
              (local.set $p (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))))
              (f64.store (local.get $p) (f64.add (f64.load (local.get $p))
                (f64.mul (local.get $v) (f64.promote_f32 (f32.load (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2))))))))
              (if (local.get $readVar)
                (then
                  (local.set $q (i32.add (local.get $vars) (i32.shl (local.get $j) (i32.const 3))))
                  (f64.store (local.get $q) (f64.add (f64.load (local.get $q))
                    (f64.mul (local.get $v2) (f64.promote_f32 (f32.load (i32.add (local.get $rv) (i32.shl (local.get $j) (i32.const 2))))))))))))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rowLoop))))

  ;; IR-drop column sums (src/noise/ir-drop.ts irDropSums, which documents the model),
  ;; the operations of each column in the JavaScript code's order. Word lines: one row at a
  ;; time, as there. Bit lines: four columns per pass in two f64x2 chains (the JavaScript code
  ;; runs two columns as two scalar chains), then two, then the odd last column in lane 0 of
  ;; a pair whose lane 1 (the next column or padding) is discarded.
  ;; Arrays: gSum float64 row-major (stride columns). gp, gm, vp, vm (vp0 = 0: no read noise)
  ;; float32, pair-interleaved so that one 8-byte load gives both lanes: array 0 holds the
  ;; column pairs (0, 1), (2, 3) ..., array 1 the pairs (1, 2), (3, 4) ..., each pair as
  ;; height rows of two values, zero where the second column is past the last. volts float64
  ;; [rows]; wl float64 [rows * cols + 1] row-major (window; one spare word for the odd
  ;; column's discarded lane); pp, pm float64 [4 * rows] scratch, two lanes per chain
  ;; interleaved; sums, vars float64 [cols].
  (func (export "irDropSums")
    (param $gSum i32) (param $gp0 i32) (param $gp1 i32) (param $gm0 i32) (param $gm1 i32)
    (param $vp0 i32) (param $vp1 i32) (param $vm0 i32) (param $vm1 i32)
    (param $height i32) (param $stride i32) (param $rowStart i32) (param $rows i32) (param $colStart i32) (param $cols i32)
    (param $volts i32) (param $wl i32) (param $pp i32) (param $pm i32)
    (param $tail f64) (param $r f64) (param $sums i32) (param $vars i32)
    (local $i i32) (local $j i32) (local $o i32) (local $c i32) (local $odd i32) (local $base i32)
    (local $v f64) (local $total f64) (local $beyond f64) (local $drop f64)
    (local $vv v128) (local $rr v128) (local $tailv v128)
    (local $gpk0 i32) (local $gmk0 i32) (local $vpk0 i32) (local $vmk0 i32) (local $wk0 i32)
    (local $gpk1 i32) (local $gmk1 i32) (local $vpk1 i32) (local $vmk1 i32) (local $wk1 i32)
    (local $accP0 v128) (local $accM0 v128) (local $riseP0 v128) (local $riseM0 v128) (local $s0 v128) (local $var0 v128) (local $u0 v128) (local $up0 v128) (local $um0 v128) (local $gpv0 v128) (local $gmv0 v128)
    (local $accP1 v128) (local $accM1 v128) (local $riseP1 v128) (local $riseM1 v128) (local $s1 v128) (local $var1 v128) (local $u1 v128) (local $up1 v128) (local $um1 v128) (local $gpv1 v128) (local $gmv1 v128)
    (local.set $rr (f64x2.splat (local.get $r)))
    (local.set $tailv (f64x2.splat (local.get $tail)))

    ;; Word lines: the segments from the driver to the first pair of the window carry the
    ;; whole row current; after each pair the current drops by what that pair drew.
    (block $rowsDone (loop $rowLoop
      (br_if $rowsDone (i32.ge_s (local.get $i) (local.get $rows)))
      (local.set $v (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3)))))
      (if (f64.eq (local.get $v) (f64.const 0))
        (then
          (local.set $j (i32.const 0))
          (block $zDone (loop $z
            (br_if $zDone (i32.ge_s (local.get $j) (local.get $cols)))
            (f64.store (i32.add (local.get $wl) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 3))) (f64.const 0))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $z))))
        (else
          (local.set $base (i32.add (local.get $gSum) (i32.shl (i32.add (i32.mul (i32.add (local.get $rowStart) (local.get $i)) (local.get $stride)) (local.get $colStart)) (i32.const 3))))
          (local.set $total (f64.const 0))
          (local.set $j (i32.const 0))
          (block $tDone (loop $t
            (br_if $tDone (i32.ge_s (local.get $j) (local.get $cols)))
            (local.set $total (f64.add (local.get $total) (f64.mul (local.get $v) (f64.load (i32.add (local.get $base) (i32.shl (local.get $j) (i32.const 3)))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $t)))
          (local.set $beyond (local.get $total))
          (local.set $drop (f64.mul (f64.mul (local.get $r) (f64.convert_i32_s (i32.add (local.get $colStart) (i32.const 1)))) (local.get $total)))
          (f64.store (i32.add (local.get $wl) (i32.shl (i32.mul (local.get $i) (local.get $cols)) (i32.const 3))) (local.get $drop))
          (local.set $j (i32.const 1))
          (block $dDone (loop $d
            (br_if $dDone (i32.ge_s (local.get $j) (local.get $cols)))
            (local.set $beyond (f64.sub (local.get $beyond) (f64.mul (local.get $v) (f64.load (i32.add (local.get $base) (i32.shl (i32.sub (local.get $j) (i32.const 1)) (i32.const 3)))))))
            (local.set $drop (f64.add (local.get $drop) (f64.mul (local.get $r) (local.get $beyond))))
            (f64.store (i32.add (local.get $wl) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 3))) (local.get $drop))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $d)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rowLoop)))

    ;; Bit lines: the segment below window row m carries the current of rows 0..m; below the
    ;; window (tail segments down to the ADC) the whole column current.
    (local.set $j (i32.const 0))
    ;; quad: 4 columns per pass (2 vector chains)
    (block $quadDone (loop $quad
      (br_if $quadDone (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $cols)))
        (local.set $c (i32.add (local.get $colStart) (i32.add (local.get $j) (i32.const 0))))
        (local.set $o (i32.shl (i32.add (i32.mul (i32.shr_u (local.get $c) (i32.const 1)) (local.get $height)) (local.get $rowStart)) (i32.const 3)))
        (local.set $odd (i32.and (local.get $c) (i32.const 1)))
        (local.set $gpk0 (i32.add (select (local.get $gp1) (local.get $gp0) (local.get $odd)) (local.get $o)))
        (local.set $gmk0 (i32.add (select (local.get $gm1) (local.get $gm0) (local.get $odd)) (local.get $o)))
        (local.set $vpk0 (i32.add (select (local.get $vp1) (local.get $vp0) (local.get $odd)) (local.get $o)))
        (local.set $vmk0 (i32.add (select (local.get $vm1) (local.get $vm0) (local.get $odd)) (local.get $o)))
        (local.set $wk0 (i32.add (local.get $wl) (i32.shl (i32.add (local.get $j) (i32.const 0)) (i32.const 3))))
        (local.set $accP0 (v128.const f64x2 0 0))
        (local.set $accM0 (v128.const f64x2 0 0))
        (local.set $s0 (v128.const f64x2 0 0))
        (local.set $var0 (v128.const f64x2 0 0))
        (local.set $c (i32.add (local.get $colStart) (i32.add (local.get $j) (i32.const 2))))
        (local.set $o (i32.shl (i32.add (i32.mul (i32.shr_u (local.get $c) (i32.const 1)) (local.get $height)) (local.get $rowStart)) (i32.const 3)))
        (local.set $odd (i32.and (local.get $c) (i32.const 1)))
        (local.set $gpk1 (i32.add (select (local.get $gp1) (local.get $gp0) (local.get $odd)) (local.get $o)))
        (local.set $gmk1 (i32.add (select (local.get $gm1) (local.get $gm0) (local.get $odd)) (local.get $o)))
        (local.set $vpk1 (i32.add (select (local.get $vp1) (local.get $vp0) (local.get $odd)) (local.get $o)))
        (local.set $vmk1 (i32.add (select (local.get $vm1) (local.get $vm0) (local.get $odd)) (local.get $o)))
        (local.set $wk1 (i32.add (local.get $wl) (i32.shl (i32.add (local.get $j) (i32.const 2)) (i32.const 3))))
        (local.set $accP1 (v128.const f64x2 0 0))
        (local.set $accM1 (v128.const f64x2 0 0))
        (local.set $s1 (v128.const f64x2 0 0))
        (local.set $var1 (v128.const f64x2 0 0))
      (local.set $i (i32.const 0))
      (block $quadFwdDone (loop $quadFwd
        (br_if $quadFwdDone (i32.ge_s (local.get $i) (local.get $rows)))
        (local.set $vv (f64x2.splat (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gpv0 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk0) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gmv0 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk0) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $accP0 (f64x2.add (local.get $accP0) (f64x2.mul (local.get $vv) (local.get $gpv0))))
          (local.set $accM0 (f64x2.add (local.get $accM0) (f64x2.mul (local.get $vv) (local.get $gmv0))))
          (v128.store (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))) (local.get $accP0))
          (v128.store (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))) (local.get $accM0))
          (local.set $gpv1 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk1) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gmv1 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk1) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $accP1 (f64x2.add (local.get $accP1) (f64x2.mul (local.get $vv) (local.get $gpv1))))
          (local.set $accM1 (f64x2.add (local.get $accM1) (f64x2.mul (local.get $vv) (local.get $gmv1))))
          (v128.store (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 16))) (local.get $accP1))
          (v128.store (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 16))) (local.get $accM1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $quadFwd)))
        (local.set $riseP0 (f64x2.mul (local.get $tailv) (local.get $accP0)))
        (local.set $riseM0 (f64x2.mul (local.get $tailv) (local.get $accM0)))
        (local.set $riseP1 (f64x2.mul (local.get $tailv) (local.get $accP1)))
        (local.set $riseM1 (f64x2.mul (local.get $tailv) (local.get $accM1)))
      (local.set $i (i32.sub (local.get $rows) (i32.const 1)))
      (block $quadBwdDone (loop $quadBwd
        (br_if $quadBwdDone (i32.lt_s (local.get $i) (i32.const 0)))
        (local.set $vv (f64x2.splat (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $riseP0 (f64x2.add (local.get $riseP0) (v128.load (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))))))
          (local.set $riseM0 (f64x2.add (local.get $riseM0) (v128.load (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))))))
          (local.set $u0 (f64x2.sub (local.get $vv)
            (v128.load (i32.add (local.get $wk0) (i32.shl (i32.mul (local.get $i) (local.get $cols)) (i32.const 3))))))
          (local.set $up0 (f64x2.sub (local.get $u0) (f64x2.mul (local.get $rr) (local.get $riseP0))))
          (local.set $um0 (f64x2.sub (local.get $u0) (f64x2.mul (local.get $rr) (local.get $riseM0))))
          (local.set $s0 (f64x2.add (local.get $s0)
            (f64x2.sub (f64x2.mul (local.get $up0) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk0) (i32.shl (local.get $i) (i32.const 3))))))
                       (f64x2.mul (local.get $um0) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk0) (i32.shl (local.get $i) (i32.const 3)))))))))
          (if (local.get $vp0) (then
            (local.set $var0 (f64x2.add (local.get $var0)
              (f64x2.add (f64x2.mul (f64x2.mul (local.get $up0) (local.get $up0)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vpk0) (i32.shl (local.get $i) (i32.const 3))))))
                         (f64x2.mul (f64x2.mul (local.get $um0) (local.get $um0)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vmk0) (i32.shl (local.get $i) (i32.const 3)))))))))))
          (local.set $riseP1 (f64x2.add (local.get $riseP1) (v128.load (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 16))))))
          (local.set $riseM1 (f64x2.add (local.get $riseM1) (v128.load (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 16))))))
          (local.set $u1 (f64x2.sub (local.get $vv)
            (v128.load (i32.add (local.get $wk1) (i32.shl (i32.mul (local.get $i) (local.get $cols)) (i32.const 3))))))
          (local.set $up1 (f64x2.sub (local.get $u1) (f64x2.mul (local.get $rr) (local.get $riseP1))))
          (local.set $um1 (f64x2.sub (local.get $u1) (f64x2.mul (local.get $rr) (local.get $riseM1))))
          (local.set $s1 (f64x2.add (local.get $s1)
            (f64x2.sub (f64x2.mul (local.get $up1) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk1) (i32.shl (local.get $i) (i32.const 3))))))
                       (f64x2.mul (local.get $um1) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk1) (i32.shl (local.get $i) (i32.const 3)))))))))
          (if (local.get $vp0) (then
            (local.set $var1 (f64x2.add (local.get $var1)
              (f64x2.add (f64x2.mul (f64x2.mul (local.get $up1) (local.get $up1)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vpk1) (i32.shl (local.get $i) (i32.const 3))))))
                         (f64x2.mul (f64x2.mul (local.get $um1) (local.get $um1)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vmk1) (i32.shl (local.get $i) (i32.const 3)))))))))))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $quadBwd)))
        (v128.store (i32.add (local.get $sums) (i32.shl (i32.add (local.get $j) (i32.const 0)) (i32.const 3))) (local.get $s0))
        (if (local.get $vp0) (then (v128.store (i32.add (local.get $vars) (i32.shl (i32.add (local.get $j) (i32.const 0)) (i32.const 3))) (local.get $var0))))
        (v128.store (i32.add (local.get $sums) (i32.shl (i32.add (local.get $j) (i32.const 2)) (i32.const 3))) (local.get $s1))
        (if (local.get $vp0) (then (v128.store (i32.add (local.get $vars) (i32.shl (i32.add (local.get $j) (i32.const 2)) (i32.const 3))) (local.get $var1))))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $quad)))
    ;; pair: 2 columns per pass (1 vector chain)
    (block $pairDone (loop $pair
      (br_if $pairDone (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $cols)))
        (local.set $c (i32.add (local.get $colStart) (i32.add (local.get $j) (i32.const 0))))
        (local.set $o (i32.shl (i32.add (i32.mul (i32.shr_u (local.get $c) (i32.const 1)) (local.get $height)) (local.get $rowStart)) (i32.const 3)))
        (local.set $odd (i32.and (local.get $c) (i32.const 1)))
        (local.set $gpk0 (i32.add (select (local.get $gp1) (local.get $gp0) (local.get $odd)) (local.get $o)))
        (local.set $gmk0 (i32.add (select (local.get $gm1) (local.get $gm0) (local.get $odd)) (local.get $o)))
        (local.set $vpk0 (i32.add (select (local.get $vp1) (local.get $vp0) (local.get $odd)) (local.get $o)))
        (local.set $vmk0 (i32.add (select (local.get $vm1) (local.get $vm0) (local.get $odd)) (local.get $o)))
        (local.set $wk0 (i32.add (local.get $wl) (i32.shl (i32.add (local.get $j) (i32.const 0)) (i32.const 3))))
        (local.set $accP0 (v128.const f64x2 0 0))
        (local.set $accM0 (v128.const f64x2 0 0))
        (local.set $s0 (v128.const f64x2 0 0))
        (local.set $var0 (v128.const f64x2 0 0))
      (local.set $i (i32.const 0))
      (block $pairFwdDone (loop $pairFwd
        (br_if $pairFwdDone (i32.ge_s (local.get $i) (local.get $rows)))
        (local.set $vv (f64x2.splat (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gpv0 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk0) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gmv0 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk0) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $accP0 (f64x2.add (local.get $accP0) (f64x2.mul (local.get $vv) (local.get $gpv0))))
          (local.set $accM0 (f64x2.add (local.get $accM0) (f64x2.mul (local.get $vv) (local.get $gmv0))))
          (v128.store (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))) (local.get $accP0))
          (v128.store (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))) (local.get $accM0))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $pairFwd)))
        (local.set $riseP0 (f64x2.mul (local.get $tailv) (local.get $accP0)))
        (local.set $riseM0 (f64x2.mul (local.get $tailv) (local.get $accM0)))
      (local.set $i (i32.sub (local.get $rows) (i32.const 1)))
      (block $pairBwdDone (loop $pairBwd
        (br_if $pairBwdDone (i32.lt_s (local.get $i) (i32.const 0)))
        (local.set $vv (f64x2.splat (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $riseP0 (f64x2.add (local.get $riseP0) (v128.load (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))))))
          (local.set $riseM0 (f64x2.add (local.get $riseM0) (v128.load (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))))))
          (local.set $u0 (f64x2.sub (local.get $vv)
            (v128.load (i32.add (local.get $wk0) (i32.shl (i32.mul (local.get $i) (local.get $cols)) (i32.const 3))))))
          (local.set $up0 (f64x2.sub (local.get $u0) (f64x2.mul (local.get $rr) (local.get $riseP0))))
          (local.set $um0 (f64x2.sub (local.get $u0) (f64x2.mul (local.get $rr) (local.get $riseM0))))
          (local.set $s0 (f64x2.add (local.get $s0)
            (f64x2.sub (f64x2.mul (local.get $up0) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk0) (i32.shl (local.get $i) (i32.const 3))))))
                       (f64x2.mul (local.get $um0) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk0) (i32.shl (local.get $i) (i32.const 3)))))))))
          (if (local.get $vp0) (then
            (local.set $var0 (f64x2.add (local.get $var0)
              (f64x2.add (f64x2.mul (f64x2.mul (local.get $up0) (local.get $up0)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vpk0) (i32.shl (local.get $i) (i32.const 3))))))
                         (f64x2.mul (f64x2.mul (local.get $um0) (local.get $um0)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vmk0) (i32.shl (local.get $i) (i32.const 3)))))))))))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $pairBwd)))
        (v128.store (i32.add (local.get $sums) (i32.shl (i32.add (local.get $j) (i32.const 0)) (i32.const 3))) (local.get $s0))
        (if (local.get $vp0) (then (v128.store (i32.add (local.get $vars) (i32.shl (i32.add (local.get $j) (i32.const 0)) (i32.const 3))) (local.get $var0))))
      (local.set $j (i32.add (local.get $j) (i32.const 2)))
      (br $pair)))
    ;; The odd last column, in lane 0; lane 1 (the next column or padding) is discarded.
    (if (i32.lt_s (local.get $j) (local.get $cols)) (then        (local.set $c (i32.add (local.get $colStart) (local.get $j)))
        (local.set $o (i32.shl (i32.add (i32.mul (i32.shr_u (local.get $c) (i32.const 1)) (local.get $height)) (local.get $rowStart)) (i32.const 3)))
        (local.set $odd (i32.and (local.get $c) (i32.const 1)))
        (local.set $gpk0 (i32.add (select (local.get $gp1) (local.get $gp0) (local.get $odd)) (local.get $o)))
        (local.set $gmk0 (i32.add (select (local.get $gm1) (local.get $gm0) (local.get $odd)) (local.get $o)))
        (local.set $vpk0 (i32.add (select (local.get $vp1) (local.get $vp0) (local.get $odd)) (local.get $o)))
        (local.set $vmk0 (i32.add (select (local.get $vm1) (local.get $vm0) (local.get $odd)) (local.get $o)))
        (local.set $wk0 (i32.add (local.get $wl) (i32.shl (local.get $j) (i32.const 3))))
        (local.set $accP0 (v128.const f64x2 0 0))
        (local.set $accM0 (v128.const f64x2 0 0))
        (local.set $s0 (v128.const f64x2 0 0))
        (local.set $var0 (v128.const f64x2 0 0))
      (local.set $i (i32.const 0))
      (block $oneFwdDone (loop $oneFwd
        (br_if $oneFwdDone (i32.ge_s (local.get $i) (local.get $rows)))
        (local.set $vv (f64x2.splat (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gpv0 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk0) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $gmv0 (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk0) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $accP0 (f64x2.add (local.get $accP0) (f64x2.mul (local.get $vv) (local.get $gpv0))))
          (local.set $accM0 (f64x2.add (local.get $accM0) (f64x2.mul (local.get $vv) (local.get $gmv0))))
          (v128.store (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))) (local.get $accP0))
          (v128.store (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))) (local.get $accM0))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $oneFwd)))
        (local.set $riseP0 (f64x2.mul (local.get $tailv) (local.get $accP0)))
        (local.set $riseM0 (f64x2.mul (local.get $tailv) (local.get $accM0)))
      (local.set $i (i32.sub (local.get $rows) (i32.const 1)))
      (block $oneBwdDone (loop $oneBwd
        (br_if $oneBwdDone (i32.lt_s (local.get $i) (i32.const 0)))
        (local.set $vv (f64x2.splat (f64.load (i32.add (local.get $volts) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $riseP0 (f64x2.add (local.get $riseP0) (v128.load (i32.add (local.get $pp) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))))))
          (local.set $riseM0 (f64x2.add (local.get $riseM0) (v128.load (i32.add (local.get $pm) (i32.add (i32.shl (local.get $i) (i32.const 5)) (i32.const 0))))))
          (local.set $u0 (f64x2.sub (local.get $vv)
            (v128.load (i32.add (local.get $wk0) (i32.shl (i32.mul (local.get $i) (local.get $cols)) (i32.const 3))))))
          (local.set $up0 (f64x2.sub (local.get $u0) (f64x2.mul (local.get $rr) (local.get $riseP0))))
          (local.set $um0 (f64x2.sub (local.get $u0) (f64x2.mul (local.get $rr) (local.get $riseM0))))
          (local.set $s0 (f64x2.add (local.get $s0)
            (f64x2.sub (f64x2.mul (local.get $up0) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gpk0) (i32.shl (local.get $i) (i32.const 3))))))
                       (f64x2.mul (local.get $um0) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gmk0) (i32.shl (local.get $i) (i32.const 3)))))))))
          (if (local.get $vp0) (then
            (local.set $var0 (f64x2.add (local.get $var0)
              (f64x2.add (f64x2.mul (f64x2.mul (local.get $up0) (local.get $up0)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vpk0) (i32.shl (local.get $i) (i32.const 3))))))
                         (f64x2.mul (f64x2.mul (local.get $um0) (local.get $um0)) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $vmk0) (i32.shl (local.get $i) (i32.const 3)))))))))))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $oneBwd)))
      (f64.store (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 3))) (f64x2.extract_lane 0 (local.get $s0)))
      (if (local.get $vp0) (then (f64.store (i32.add (local.get $vars) (i32.shl (local.get $j) (i32.const 3))) (f64x2.extract_lane 0 (local.get $var0))))))))
)
