//! `x·Wᵀ` for a weight that trains (full fine-tuning, `modules_to_save`, unfrozen layers),
//! with both gradients computed by the kernels' GEMM.
//!
//! candle's matmul of `x` and `W.t()` runs on the gemm crate, and its backward forms the
//! weight gradient as `xᵀ·dy` `[in, out]`, which the transpose node then hands on as a strided
//! view that the gradient sum copies element by element. This op computes, from one saved `x`
//! and the `W` operand:
//!
//! ```text
//! y  = x·Wᵀ     [rows, out]
//! dx = dy·W     [rows, in]    (only when x tracks a gradient)
//! dW = dyᵀ·x    [out, in]     (contiguous, in W's own layout)
//! ```
//!
//! all three by [`crate::kernels::gemm`]'s threaded path (oneDNN when loaded). With mixed
//! precision every operand is rounded first, as autocast computes these products: full
//! fine-tuning and `modules_to_save` in bf16/fp16 now compute as autocast does, where candle's
//! matmul (the path before this op, and with the fused kernels off) rounds nothing.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use crate::kernels::precision::{matmul_precision, round_operand};
use crate::kernels::{cpu_slice, matmul_nn, matmul_nt, matmul_tn, with_slice};

/// The op (see the module docs); no state: `x` and `W` are its operands.
pub(super) struct TrainedMatmulWt;

impl CustomOp2 for TrainedMatmulWt {
    fn name(&self) -> &'static str {
        "trained-matmul-wt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, k) = l1.shape().dims2()?;
        let (out, k_w) = l2.shape().dims2()?;
        if k != k_w {
            candle_core::bail!("trained-matmul-wt: x has {k} columns, weight has {k_w}");
        }
        let (x, w) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?);
        let p = matmul_precision();
        let y = matmul_nt(&round_operand(x, p), &round_operand(w, p), rows, out, k)?;
        Ok((CpuStorage::F32(y), Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, out) = grad_y.dims2()?;
        let (_, k) = w.dims2()?;
        let p = matmul_precision();
        let dev = grad_y.device();
        with_slice(grad_y, |g| {
            let g = round_operand(g, p);
            let dx = if x.track_op() {
                let dx = with_slice(w, |w| matmul_nn(&g, &round_operand(w, p), rows, out, k))??;
                Some(Tensor::from_vec(dx, (rows, k), dev)?)
            } else {
                None
            };
            let dw = with_slice(x, |x| matmul_tn(&g, &round_operand(x, p), rows, out, k))??;
            Ok((dx, Some(Tensor::from_vec(dw, (out, k), dev)?)))
        })?
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Tensor, Var};

    use crate::error::Result;
    use crate::kernels::precision::{with_matmul_precision, MatmulPrecision};
    use crate::kernels::{rel_err, test_tensor, with_fused};
    use crate::layers::matmul_wt;

    /// `y`, `dx` and `dW` against candle's `x.matmul(&w.t())` through its autograd, f32:
    /// within 1e-5 relative (max |Δ| / max |reference|; summation order differs).
    #[test]
    fn values_and_both_gradients_match_candle_matmul() -> Result<()> {
        let w = Var::from_tensor(&test_tensor(&[37, 70], 1))?;
        let x = Var::from_tensor(&test_tensor(&[129, 70], 2))?;
        let dy = test_tensor(&[129, 37], 3);
        let reference = x.as_tensor().matmul(&w.as_tensor().t()?)?;
        let g_ref = (&reference * &dy)?.sum_all()?.backward()?;
        let ours = with_fused(true, || matmul_wt(x.as_tensor(), w.as_tensor()))?;
        let g = (&ours * &dy)?.sum_all()?.backward()?;
        assert!(rel_err(&ours, &reference) < 1e-5);
        for (name, t) in [("dx", x.as_tensor()), ("dW", w.as_tensor())] {
            let (Some(a), Some(b)) = (g.get(t), g_ref.get(t)) else {
                panic!("{name} missing")
            };
            let e = rel_err(a, b);
            assert!(e < 1e-5, "{name} differs by {e}");
        }
        // An input that tracks nothing gets no gradient; the weight's is still right.
        let x_plain = test_tensor(&[5, 70], 4);
        let y = with_fused(true, || matmul_wt(&x_plain, w.as_tensor()))?;
        let g = y.sum_all()?.backward()?;
        assert!(g.get(&x_plain).is_none());
        let g_ref = x_plain.matmul(&w.as_tensor().t()?)?.sum_all()?.backward()?;
        let (Some(a), Some(b)) = (g.get(w.as_tensor()), g_ref.get(w.as_tensor())) else {
            panic!("dW missing")
        };
        assert!(rel_err(a, b) < 1e-5);
        Ok(())
    }

    /// With bf16 products the forward and both gradients equal the products of rounded
    /// operands (exact products, f32 sums: within 1e-6), and the forward differs from f32's.
    #[test]
    fn bf16_rounds_both_operands() -> Result<()> {
        let w = Var::from_tensor(&test_tensor(&[16, 48], 5))?;
        let x = Var::from_tensor(&test_tensor(&[33, 48], 6))?;
        let round = |t: &Tensor| t.to_dtype(DType::BF16)?.to_dtype(DType::F32);
        let want = round(x.as_tensor())?.matmul(&round(w.as_tensor())?.t()?)?;
        let y = with_matmul_precision(MatmulPrecision::Bf16, || {
            with_fused(true, || matmul_wt(x.as_tensor(), w.as_tensor()))
        })?;
        assert!(rel_err(&y, &want) < 1e-6);
        let f32_y = x.as_tensor().matmul(&w.as_tensor().t()?)?;
        assert!(rel_err(&y, &f32_y) > 1e-5);
        // Backward (the precision is read when it runs): dx = r(dy)·r(W), dW = r(dy)ᵀ·r(x).
        let dy = test_tensor(&[33, 16], 7);
        let g = with_matmul_precision(MatmulPrecision::Bf16, || (&y * &dy)?.sum_all()?.backward())?;
        let want_dx = round(&dy)?.matmul(&round(w.as_tensor())?)?;
        let want_dw = round(&dy)?.t()?.matmul(&round(x.as_tensor())?)?;
        for (name, t, want) in [
            ("dx", x.as_tensor(), want_dx),
            ("dW", w.as_tensor(), want_dw),
        ] {
            let Some(got) = g.get(t) else {
                panic!("{name} missing")
            };
            let e = rel_err(got, &want);
            assert!(e < 1e-6, "{name} differs by {e}");
        }
        Ok(())
    }
}
