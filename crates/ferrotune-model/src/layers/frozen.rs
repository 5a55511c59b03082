//! `x·Wᵀ` for the linear layers' products: a frozen weight gets an op whose backward computes
//! only `dx` (this file); a trained one gets the op of `layers/trained.rs`.
//!
//! candle's generic matmul backward computes the gradient of both operands, so every
//! frozen base weight (LoRA, or any weight that is not a `Var`) would get a full
//! weight-gradient GEMM and a zero-filled `[out, in]` buffer that is then thrown away:
//! about a third of a linear layer's training work, and for the LM head `[V, C]` the largest
//! single allocation of the step. [`matmul_wt`] routes such products through a custom op
//! whose backward is `dx = dy·W` alone. Products of a few rows that track no gradient at all
//! (a decode step) go to the matrix–vector kernels of `layers/gemv.rs` instead.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};

use crate::error::Result;
use crate::kernels::precision::round_operand;
use crate::layers::gemv::{gemv_f32, GEMV_MAX_ROWS};

/// `x` `[rows, in]` · `w`ᵀ with `w` `[out, in]` → `[rows, out]`.
///
/// Uses the dx-only op when `w` is frozen (tracks no gradient), `x` needs gradients, and both
/// are contiguous f32 on the CPU; the op of `layers/trained.rs` (both gradients by the
/// kernels' GEMM) when `w` trains, both are f32 on the CPU and the fused kernels are on;
/// [`crate::layers::gemv_f32`] when neither tracks a gradient and `x` has at most
/// [`crate::layers::GEMV_MAX_ROWS`] rows (equal up to f32 summation order); otherwise
/// candle's matmul. The two ops round their operands under mixed precision
/// ([`crate::kernels::precision`]), as autocast does; candle's matmul (fused kernels off)
/// does not.
pub fn matmul_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if let Some(y) = small_product_without_grad(x, w)? {
        return Ok(y);
    }
    let eligible = x.track_op()
        && !w.track_op()
        && x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && w.is_contiguous()
        && x.rank() == 2
        && w.rank() == 2;
    if eligible {
        return Ok(x
            .contiguous()?
            .apply_op1(FrozenMatmulWt { weight: w.clone() })?);
    }
    let trained = w.track_op()
        && crate::kernels::fused()
        && x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.rank() == 2
        && w.rank() == 2;
    if trained {
        return Ok(x
            .contiguous()?
            .apply_op2(&w.contiguous()?, super::trained::TrainedMatmulWt)?);
    }
    Ok(x.matmul(&w.t()?)?)
}

/// `x·Wᵀ` by [`crate::layers::gemv_f32`] when `x` `[rows ≤ GEMV_MAX_ROWS, in]` and `w`
/// `[out, in]` are f32 on the CPU, `w` contiguous, and neither tracks a gradient; else `None`.
fn small_product_without_grad(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let eligible = !x.track_op()
        && !w.track_op()
        && x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && w.is_contiguous()
        && x.rank() == 2
        && w.rank() == 2;
    if !eligible {
        return Ok(None);
    }
    let (rows, k) = x.dims2()?;
    let (out, k_w) = w.dims2()?;
    if rows == 0 || rows > GEMV_MAX_ROWS || k != k_w {
        return Ok(None);
    }
    let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let (w_storage, w_layout) = w.storage_and_layout();
    let (Storage::Cpu(w_cpu), Some((start, end))) = (&*w_storage, w_layout.contiguous_offsets())
    else {
        return Ok(None);
    };
    let ws = &w_cpu.as_slice::<f32>()?[start..end];
    let y = gemv_f32(&xs, rows, ws, out, k);
    drop(w_storage);
    Ok(Some(Tensor::from_vec(y, (rows, out), x.device())?))
}

/// The custom op: forward `y = x·Wᵀ` and backward `dx = dy·W` by
/// [`crate::kernels::matmul_nt`]/[`crate::kernels::matmul_nn`] (oneDNN when loaded, else the
/// gemm crate); `W` is captured, not an operand, so no gradient is made for it.
struct FrozenMatmulWt {
    /// `[out, in]` f32, contiguous, on the CPU.
    weight: Tensor,
}

impl CustomOp1 for FrozenMatmulWt {
    fn name(&self) -> &'static str {
        "frozen-matmul-wt"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, k) = layout.shape().dims2()?;
        let (out, k_w) = self.weight.dims2()?;
        if k != k_w {
            candle_core::bail!("frozen-matmul-wt: x has {k} columns, weight has {k_w}");
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul-wt: x must be contiguous");
        };
        let x = &storage.as_slice::<f32>()?[start..end];
        let (w_storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w_cpu) = &*w_storage else {
            candle_core::bail!("frozen-matmul-wt: weight must be on the CPU");
        };
        let Some((w_start, w_end)) = w_layout.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul-wt: weight must be contiguous");
        };
        let w = &w_cpu.as_slice::<f32>()?[w_start..w_end];
        let p = crate::kernels::precision::matmul_precision();
        let (x, w) = (round_operand(x, p), round_operand(w, p));
        let y = crate::kernels::matmul_nt(&x, &w, rows, out, k)?;
        Ok((CpuStorage::F32(y), Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // dy [rows, out] · W [out, in] = dx [rows, in].
        let (rows, out) = grad_y.dims2()?;
        let (_, k) = self.weight.dims2()?;
        let dx = crate::kernels::with_slice(grad_y, |g| {
            crate::kernels::with_slice(&self.weight, |w| {
                let p = crate::kernels::precision::matmul_precision();
                crate::kernels::matmul_nn(&round_operand(g, p), &round_operand(w, p), rows, out, k)
            })
        })???;
        Ok(Some(Tensor::from_vec(dx, (rows, k), grad_y.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn same_values_and_input_gradient_as_candle_matmul() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (7, 5), &dev)?;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 5), &dev)?)?;
        let dy = Tensor::randn(0f32, 1.0, (3, 7), &dev)?;
        let ours = matmul_wt(x.as_tensor(), &w)?;
        let reference = x.as_tensor().matmul(&w.t()?)?;
        let diff = (&ours - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        let g_ours = (ours * &dy)?.sum_all()?.backward()?;
        let g_ref = (reference * &dy)?.sum_all()?.backward()?;
        let (a, b) = (
            g_ours.get(x.as_tensor()).unwrap(),
            g_ref.get(x.as_tensor()).unwrap(),
        );
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "dx differs by {diff}");
        // The frozen weight gets no gradient at all.
        assert!(g_ours.get(&w).is_none());
        Ok(())
    }

    #[test]
    fn few_rows_without_gradients_take_the_gemv_path_with_the_same_values() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (300, 70), &dev)?;
        for rows in [1, GEMV_MAX_ROWS, GEMV_MAX_ROWS + 1] {
            let x = Tensor::randn(0f32, 1.0, (rows, 70), &dev)?;
            let gemv = small_product_without_grad(&x, &w)?;
            assert_eq!(gemv.is_some(), rows <= GEMV_MAX_ROWS, "rows {rows}");
            let ours = matmul_wt(&x, &w)?;
            let reference = x.matmul(&w.t()?)?;
            let diff = (&ours - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "rows {rows}: differs by {diff}");
        }
        // A tracked input keeps the differentiable path.
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 70), &dev)?)?;
        assert!(small_product_without_grad(x.as_tensor(), &w)?.is_none());
        Ok(())
    }
}
