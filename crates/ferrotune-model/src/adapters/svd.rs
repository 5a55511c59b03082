//! PiSSA initialization (Meng et al. 2024, "PiSSA: Principal Singular Values and Singular
//! Vectors Adaptation"; PEFT `LoraLayer.pissa_init`): the top-r singular triplets of a
//! weight `W` `[out, in]` give `A = diag(√(σ/s))·Vᵣᵀ` `[r, in]`, `B = Uᵣ·diag(√(σ/s))`
//! `[out, r]`, and the frozen base becomes the residual `W − s·B·A`.
//!
//! candle has no SVD, so this is a small one in f64: the exact path runs a cyclic Jacobi
//! eigensolver (Golub & Van Loan, "Matrix Computations", §8.5) on the Gram matrix `W·Wᵀ`
//! of the shorter side; the randomized path (Halko, Martinsson & Tropp 2011, alg. 4.4, as
//! `torch.svd_lowrank`) first projects W onto an r-dimensional subspace refined by `niter`
//! power iterations. Singular vectors are unique only up to sign, which cancels in B·A.

use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

use crate::error::Result;

/// Row-major dense matrix in f64.
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Mat {
    fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }
    fn t(&self) -> Self {
        let mut o = Self::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                o.data[j * self.rows + i] = self.at(i, j);
            }
        }
        o
    }
    /// `self · other`.
    fn mul(&self, other: &Self) -> Self {
        let mut o = Self::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.at(i, k);
                let (src, dst) = (
                    &other.data[k * other.cols..(k + 1) * other.cols],
                    &mut o.data[i * other.cols..(i + 1) * other.cols],
                );
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += a * s);
            }
        }
        o
    }
    /// Orthonormalizes the columns in place (modified Gram–Schmidt, twice for stability).
    fn orthonormalize_columns(&mut self) {
        for _ in 0..2 {
            for j in 0..self.cols {
                for p in 0..j {
                    let dot: f64 = (0..self.rows).map(|i| self.at(i, j) * self.at(i, p)).sum();
                    for i in 0..self.rows {
                        self.data[i * self.cols + j] -= dot * self.at(i, p);
                    }
                }
                let norm = (0..self.rows)
                    .map(|i| self.at(i, j).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let inv = if norm > 1e-300 { 1.0 / norm } else { 0.0 };
                for i in 0..self.rows {
                    self.data[i * self.cols + j] *= inv;
                }
            }
        }
    }
}

/// Eigen-decomposition of a symmetric `[n, n]` matrix by cyclic Jacobi rotations:
/// eigenvalues and the matching eigenvectors as columns, sorted by decreasing eigenvalue.
fn symmetric_eigen(mut a: Mat) -> (Vec<f64>, Mat) {
    let n = a.rows;
    let mut v = Mat::zeros(n, n);
    (0..n).for_each(|i| v.data[i * n + i] = 1.0);
    let total: f64 = a.data.iter().map(|x| x * x).sum();
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a.at(i, j).powi(2))
            .sum();
        if off <= 1e-30 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a.at(p, q);
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a.at(q, q) - a.at(p, p)) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a.at(k, p), a.at(k, q));
                    a.data[k * n + p] = c * akp - s * akq;
                    a.data[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a.at(p, k), a.at(q, k));
                    a.data[p * n + k] = c * apk - s * aqk;
                    a.data[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v.at(k, p), v.at(k, q));
                    v.data[k * n + p] = c * vkp - s * vkq;
                    v.data[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a.at(j, j).total_cmp(&a.at(i, i)));
    let vals = order.iter().map(|&i| a.at(i, i)).collect();
    let mut vecs = Mat::zeros(n, n);
    for (new, &old) in order.iter().enumerate() {
        (0..n).for_each(|k| vecs.data[k * n + new] = v.at(k, old));
    }
    (vals, vecs)
}

/// Top-`r` SVD of `w` `[m, n]`: `(U [m, r], σ [r], Vᵀ [r, n])`.
fn top_svd(w: &Mat, r: usize, niter: Option<usize>, rng: &mut StdRng) -> (Mat, Vec<f64>, Mat) {
    // Basis Q [m, k] of the column space to work in: all of it, or a randomized sketch.
    let q = match niter {
        None => {
            let mut q = Mat::zeros(w.rows, w.rows);
            (0..w.rows).for_each(|i| q.data[i * w.rows + i] = 1.0);
            q
        }
        Some(iters) => {
            let k = r.min(w.rows).min(w.cols);
            let mut omega = Mat::zeros(w.cols, k);
            omega.data.iter_mut().for_each(|x| {
                // Box–Muller standard normal.
                let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
                *x = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            });
            let wt = w.t();
            let mut q = w.mul(&omega);
            q.orthonormalize_columns();
            for _ in 0..iters {
                let mut z = wt.mul(&q);
                z.orthonormalize_columns();
                q = w.mul(&z);
                q.orthonormalize_columns();
            }
            q
        }
    };
    let b = q.t().mul(w); // [k, n]
    let (lambda, e) = symmetric_eigen(b.mul(&b.t())); // B·Bᵀ = E·Λ·Eᵀ
    let r = r.min(lambda.len());
    let sigma: Vec<f64> = lambda[..r].iter().map(|l| l.max(0.0).sqrt()).collect();
    let er = Mat {
        rows: e.rows,
        cols: r,
        data: (0..e.rows)
            .flat_map(|i| (0..r).map(move |j| (i, j)))
            .map(|(i, j)| e.at(i, j))
            .collect(),
    };
    let u = q.mul(&er); // [m, r]
    let mut vt = er.t().mul(&b); // [r, n], rows scaled by σ
    for (j, s) in sigma.iter().enumerate() {
        let inv = if *s > 1e-300 { 1.0 / s } else { 0.0 };
        vt.data[j * vt.cols..(j + 1) * vt.cols]
            .iter_mut()
            .for_each(|x| *x *= inv);
    }
    (u, sigma, vt)
}

/// PiSSA's `(A [r, in], B [out, r], residual [out, in])` for `weight` `[out, in]` f32, rank
/// `r` and scaling `s` (PEFT divides σ by s so that `s·B·A` is the principal part).
pub(crate) fn pissa(
    weight: &Tensor,
    r: usize,
    scaling: f64,
    niter: Option<usize>,
    rng: &mut StdRng,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (out, inp) = weight.dims2()?;
    let data: Vec<f64> = weight.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let w = Mat {
        rows: out,
        cols: inp,
        data,
    };
    // Work on the shorter side: the Gram matrix is [min, min].
    let (u, sigma, vt) = if out <= inp {
        top_svd(&w, r, niter, rng)
    } else {
        let (u, s, vt) = top_svd(&w.t(), r, niter, rng);
        (vt.t(), s, u.t())
    };
    let k = sigma.len();
    let root: Vec<f64> = sigma.iter().map(|s| (s / scaling).sqrt()).collect();
    let a: Vec<f32> = (0..k)
        .flat_map(|i| (0..inp).map(move |j| (i, j)))
        .map(|(i, j)| (root[i] * vt.at(i, j)) as f32)
        .collect();
    let b: Vec<f32> = (0..out)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| (u.at(i, j) * root[j]) as f32)
        .collect();
    let dev = weight.device();
    let mut a = Tensor::from_vec(a, (k, inp), dev)?;
    let mut b = Tensor::from_vec(b, (out, k), dev)?;
    if k < r {
        // A rank below r (tiny layers): pad with zero rows/columns so shapes stay [r, in]/[out, r].
        a = Tensor::cat(&[a, Tensor::zeros((r - k, inp), DType::F32, dev)?], 0)?;
        b = Tensor::cat(&[b, Tensor::zeros((out, r - k), DType::F32, dev)?], 1)?;
    }
    let residual = (weight - (b.matmul(&a)? * scaling)?)?;
    Ok((a, b, residual))
}
