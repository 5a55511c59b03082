//! A branch-free `exp` for f32 loops that the compiler vectorizes (libm's `expf` is a call
//! per element: 7–8% of a LoRA training step went to it, mostly in the attention tiles'
//! softmax and the loss's 49,152-wide rows). Inlined into a `simd::multiversion!`
//! loop it runs 16 lanes wide on AVX-512: no float-to-int cast, no branch.
//!
//! Method (Cody and Waite range reduction, as in Cephes `expf`): `n = round(x·log2 e)`,
//! `r = x − n·ln 2` with ln 2 split in a high and a low part so that `r` is exact to f32,
//! `e^r` by its degree-7 Taylor polynomial on |r| ≤ ln 2 / 2 (truncation error below
//! 5.3e-9 relative), and `2^n` built in the exponent bits. Error: at most 2 ulp against
//! f64 `exp` over [-87, 88] (tested); `exp(x) = 0` for x < -87.3 (results in f32's
//! subnormal range are flushed; -inf gives 0, as masked scores need), `+inf` for x > 88.3 (a
//! little early: f32 overflows at 88.72; the softmax loops call it on x ≤ 0, SwiGLU's `σ` on any
//! x, where `1 / (1 + ∞) = 0` is the right limit), NaN for NaN.

/// `e^x` in f32 (see the module docs for the method and error).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 8 trailing zero bits so n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.3);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // e^r = 1 + r + r²/2! + ... + r⁷/7!, Horner form.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // `t`'s low mantissa bits hold n as a two's-complement offset from ROUND's bits; read
    // it from there (a float-to-int cast is a saturating conversion that blocks vectorizing).
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    // Selects, not branches, so that loops over slices vectorize.
    let y = p * scale;
    let y = if x < -87.3 { 0.0 } else { y };
    let y = if x > 88.3 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> i64 {
        (i64::from(a.to_bits() as i32) - i64::from(b.to_bits() as i32)).abs()
    }

    #[test]
    fn within_two_ulp_of_f64_exp() {
        let mut worst = 0;
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = -87.0 + 175.0 * i as f32 / steps as f32;
            let reference = (x as f64).exp() as f32;
            let u = ulps(exp_f32(x), reference);
            assert!(u <= 2, "exp({x}) = {} vs {reference}: {u} ulp", exp_f32(x));
            worst = worst.max(u);
        }
        assert!(worst >= 1, "compared against itself?");
    }

    #[test]
    fn edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(ulps(exp_f32(1.0), std::f32::consts::E) <= 1);
    }
}
