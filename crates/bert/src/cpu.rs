//! Fused CPU kernels for the encoder's two hot spots: the dense layers (f32, or bf16 products with
//! f32 sums) and self-attention (f32).
//!
//! Written here rather than composed from candle ops because, on BERT-base shapes and 2 cores,
//! candle's composition spent its time outside the arithmetic: its threaded GEMM scaled 1.4× from
//! one core to two (PyTorch's MKL 1.8×), every bias add, scale, mask and GELU was a separate pass
//! over memory, and attention ran as per-head matrix products after three transposing copies.
//! Here each thread multiplies its own block of rows with the single-threaded `gemm` kernel (the
//! one candle uses) into an output pre-filled with the bias and applies the activation to its
//! block; attention runs per sentence on the packed tokens (no padding, so no mask), reading query,
//! key and value straight out of the fused projection and writing the context in place. Measured in docs/performance.md ("The BERT runtime").

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

use super::config::Activation;
#[cfg(target_arch = "x86_64")]
use super::matmul;

/// `activation(x · Wᵀ + b)` for `x` `[rows, in]`, `W` `[out, in]` (the checkpoint's layout, read
/// transposed by the GEMM through its strides) and `b` `[out]`.
pub struct Linear {
    /// Applied element-wise to the result; `None` for a plain affine map.
    pub activation: Option<Activation>,
}

impl Linear {
    /// Whether the kernel runs on input `x` with `weight` here: f32 input on the CPU, with f32
    /// weights, or bf16 weights where the CPU has AVX-512 BF16.
    pub fn runs(x: &Tensor, weight: &Tensor) -> bool {
        x.device().is_cpu()
            && x.dtype() == DType::F32
            && match weight.dtype() {
                DType::F32 => true,
                DType::BF16 => bf16_products(),
                _ => false,
            }
    }
}

/// Whether this CPU multiplies in bf16 (AVX-512 BF16).
fn bf16_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    return matmul::Products::Bf16.available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The dtype a model or training pass on `device` computes in: bf16 on a CPU without AVX-512
/// BF16 runs in f32 instead (said once on stderr); anything else as asked.
pub fn runnable_dtype(dtype: DType, device: &Device) -> DType {
    static SAID: std::sync::Once = std::sync::Once::new();
    let runs = dtype_on(dtype, device.is_cpu(), bf16_products());
    if runs != dtype {
        SAID.call_once(|| eprintln!("bf16: this CPU has no AVX-512 BF16 instructions; computing in f32"));
    }
    runs
}

/// [`runnable_dtype`]'s rule: bf16 asked of a CPU without bf16 products runs f32.
fn dtype_on(dtype: DType, cpu: bool, bf16_products: bool) -> DType {
    match dtype == DType::BF16 && cpu && !bf16_products {
        true => DType::F32,
        false => dtype,
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "mb-stats-linear"
    }

    /// The fused GEMM + bias + activation: f32 input and output, f32 or bf16 weight and bias
    /// (bf16: bf16 products, f32 sums, as under autocast).
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, inner, out) = affine_shape("linear", x_layout, weight_layout, bias_layout)?;
        let x = f32s(x, x_layout)?;
        let block = rows.div_ceil(rayon::current_num_threads()).max(1);
        let mut result = match (weight, bias) {
            (CpuStorage::F32(..), CpuStorage::F32(..)) => {
                let (weight, bias) = (f32s(weight, weight_layout)?, f32s(bias, bias_layout)?);
                let mut result = bias_rows(bias.iter().copied(), rows, block);
                affine_f32(&mut result, x, weight, (rows, inner, out), block);
                result
            }
            (CpuStorage::BF16(..), CpuStorage::BF16(..)) => {
                let (weight, bias) = (
                    contiguous(weight, weight_layout, CpuStorage::as_slice::<half::bf16>)?,
                    contiguous(bias, bias_layout, CpuStorage::as_slice::<half::bf16>)?,
                );
                let mut result = bias_rows(bias.iter().map(|b| b.to_f32()), rows, block);
                affine_bf16(&mut result, x, weight, (rows, inner, out))?;
                result
            }
            _ => bail!("linear: f32 input with f32 or bf16 weight and bias"),
        };
        if let Some(activation) = self.activation {
            result
                .par_chunks_mut(block * out)
                .for_each(|chunk| activate_in_place(chunk, activation));
        }
        Ok((CpuStorage::F32(result), Shape::from((rows, out))))
    }
}

/// `(rows, inner, out)` of `x · Wᵀ + b` from the three layouts, or an error naming `op` and the
/// shapes when they disagree.
fn affine_shape(op: &str, x: &Layout, weight: &Layout, bias: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let (rows, inner) = x.shape().dims2()?;
    let (out, weight_inner) = weight.shape().dims2()?;
    if weight_inner != inner || bias.shape().dims1()? != out {
        bail!(
            "{op}: input [{rows}, {inner}], weight {:?}, bias {:?}",
            weight.shape(),
            bias.shape()
        )
    }
    Ok((rows, inner, out))
}

/// `rows` copies of `bias` as a row-major `[rows, bias]` buffer, written once (no zeroing
/// first), `block` rows per task so that the pages are first touched by the thread that
/// computes them.
fn bias_rows(bias: impl Iterator<Item = f32> + Clone + Send + Sync, rows: usize, block: usize) -> Vec<f32> {
    let out = bias.clone().count();
    if rows * out == 0 {
        return Vec::new();
    }
    let mut result = Vec::with_capacity(rows * out);
    result.spare_capacity_mut()[..rows * out]
        .par_chunks_mut(block.max(1) * out)
        .for_each(|dst| {
            for row in dst.chunks_exact_mut(out) {
                row.iter_mut().zip(bias.clone()).for_each(|(r, b)| {
                    r.write(b);
                });
            }
        });
    // SAFETY: the loop above wrote all `rows * out` values.
    unsafe { result.set_len(rows * out) };
    result
}

/// `result += x · Wᵀ` in f32: the packed AVX-512 kernels of [`crate::matmul`] where the CPU has
/// them, else one single-threaded `gemm` crate call per thread over `block` rows.
fn affine_f32(result: &mut [f32], x: &[f32], weight: &[f32], (rows, inner, out): (usize, usize, usize), block: usize) {
    #[cfg(target_arch = "x86_64")]
    if matmul::Products::F32.available() {
        let a = matmul::MatRef::row_major(x, rows, inner).expect("input shape checked");
        let b = matmul::MatRef::transposed(weight, inner, out).expect("weight shape checked");
        return matmul::gemm(result, out, a, b, matmul::Products::F32);
    }
    result
        .par_chunks_mut(block * out)
        .zip(x.par_chunks(block * inner))
        .for_each(|(dst, lhs)| {
            // SAFETY: `dst` is `[dst.len() / out, out]`, `lhs` the matching `[.., inner]` rows and
            // `weight` `[out, inner]` (read as its transpose), all row-major and in bounds for
            // the strides given.
            unsafe {
                gemm::gemm(
                    dst.len() / out,
                    out,
                    inner,
                    dst.as_mut_ptr(),
                    1,
                    out as isize,
                    true,
                    lhs.as_ptr(),
                    1,
                    inner as isize,
                    weight.as_ptr(),
                    inner as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
}

/// `result += x · Wᵀ` with bf16 products and f32 sums (AVX-512 BF16 only: a bf16 model on a CPU
/// without it runs in f32, see `settings::Precision::dtype_on`).
fn affine_bf16(
    result: &mut [f32],
    x: &[f32],
    weight: &[half::bf16],
    (rows, inner, out): (usize, usize, usize),
) -> candle_core::Result<()> {
    #[cfg(target_arch = "x86_64")]
    if matmul::Products::Bf16.available() {
        let a = matmul::MatRef::row_major(x, rows, inner).expect("input shape checked");
        let b = matmul::MatRef::transposed(weight, inner, out).expect("weight shape checked");
        matmul::gemm(result, out, a, b, matmul::Products::Bf16);
        return Ok(());
    }
    let _ = (result, x, weight, rows, inner, out);
    bail!("linear: bf16 weights need a CPU with AVX-512 BF16")
}

/// `x · Wᵀ + b` for training, differentiable: `x` `[rows, in]`, `W` `[out, in]` and `b` `[out]`
/// in f32 (master weights), products in f32 or, for bf16 autocast, rounded to bf16 with f32
/// sums, on the packed kernels of [`crate::matmul`] in both directions (the backward pass's two
/// products run in the same precision, as under PyTorch autocast). The bias starts each row's
/// sums, as in the inference kernel, and its gradient is the column sums of the output's, in
/// row order. Made by [`Affine::new`].
#[cfg(target_arch = "x86_64")]
pub struct Affine(matmul::Products);

#[cfg(target_arch = "x86_64")]
impl Affine {
    /// The op with products in `compute` (f32 or bf16), or `None` where the kernels do not run
    /// (not the CPU, factors not f32, another `compute`, no AVX-512).
    pub fn new(x: &Tensor, weight: &Tensor, compute: DType) -> Option<Affine> {
        let products = match compute {
            DType::F32 => matmul::Products::F32,
            DType::BF16 => matmul::Products::Bf16,
            _ => return None,
        };
        let f32_factors = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
        (x.device().is_cpu() && f32_factors && products.available()).then_some(Affine(products))
    }
}

#[cfg(target_arch = "x86_64")]
impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "mb-stats-affine"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, inner, out) = affine_shape("affine", x_layout, weight_layout, bias_layout)?;
        let (x, weight, bias) = (
            f32s(x, x_layout)?,
            f32s(weight, weight_layout)?,
            f32s(bias, bias_layout)?,
        );
        let mut result = bias_rows(
            bias.iter().copied(),
            rows,
            rows.div_ceil(rayon::current_num_threads()).max(1),
        );
        let a = matmul::MatRef::row_major(x, rows, inner).expect("input shape checked");
        let b = matmul::MatRef::transposed(weight, inner, out).expect("weight shape checked");
        matmul::gemm(&mut result, out, a, b, self.0);
        Ok((CpuStorage::F32(result), Shape::from((rows, out))))
    }

    /// `∂x = ∂y · W`, `∂W = ∂yᵀ · x`, `∂b = Σ_rows ∂y`.
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = grad.apply_op2_no_bwd(weight, &Product(self.0, Transposed::None))?;
        let grad_weight = grad.apply_op2_no_bwd(x, &Product(self.0, Transposed::First))?;
        let grad_bias = grad.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(grad_x), Some(grad_weight), Some(grad_bias)))
    }
}

/// Which factor of a [`Product`] is read transposed.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq)]
enum Transposed {
    None,
    First,
}

/// `a · b` (or `aᵀ · b`) of row-major f32 matrices with the given products: the backward
/// pass of [`Affine`].
#[cfg(target_arch = "x86_64")]
struct Product(matmul::Products, Transposed);

#[cfg(target_arch = "x86_64")]
impl candle_core::CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "mb-stats-product"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        a_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a_rows, a_cols) = a_layout.shape().dims2()?;
        let (k_b, n) = b_layout.shape().dims2()?;
        let (a, b) = (f32s(a, a_layout)?, f32s(b, b_layout)?);
        let (a, m, k) = match self.1 {
            Transposed::None => (matmul::MatRef::row_major(a, a_rows, a_cols), a_rows, a_cols),
            Transposed::First => (matmul::MatRef::transposed(a, a_cols, a_rows), a_cols, a_rows),
        };
        if k != k_b {
            bail!("product: inner dimensions {k} and {k_b}")
        }
        let b = matmul::MatRef::row_major(b, k_b, n).expect("contiguous");
        let mut result = vec![0f32; m * n];
        matmul::gemm(&mut result, n, a.expect("contiguous"), b, self.0);
        Ok((CpuStorage::F32(result), Shape::from((m, n))))
    }
}

/// The column sums `[cols]` of a `[rows, cols]` f32 matrix, each in row order (the same on any
/// thread count); threads take blocks of columns.
#[cfg(target_arch = "x86_64")]
struct ColumnSums;

#[cfg(target_arch = "x86_64")]
impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "mb-stats-column-sums"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, cols) = layout.shape().dims2()?;
        let x = f32s(x, layout)?;
        let mut sums = vec![0f32; cols];
        const COLUMNS: usize = 256;
        sums.par_chunks_mut(COLUMNS).enumerate().for_each(|(block, sums)| {
            let first = block * COLUMNS;
            for row in 0..rows {
                let values = &x[row * cols + first..][..sums.len()];
                sums.iter_mut().zip(values).for_each(|(s, v)| *s += v);
            }
        });
        Ok((CpuStorage::F32(sums), Shape::from(cols)))
    }
}

/// `activation(x)` for training, differentiable: the vectorised activation of the fused kernels
/// forward and its derivative backward, one pass each (candle's erf GELU and its backward are
/// several allocating passes with a scalar erf).
pub struct Activate(pub Activation);

impl CustomOp1 for Activate {
    fn name(&self) -> &'static str {
        "mb-stats-activate"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let mut values = f32s(x, layout)?.to_vec();
        values
            .par_chunks_mut(CHUNK)
            .for_each(|chunk| activate_in_place(chunk, self.0));
        Ok((CpuStorage::F32(values), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        x.apply_op2_no_bwd(&grad.contiguous()?, &ActivationGradient(self.0))
            .map(Some)
    }
}

/// `grad · activation′(x)`, the backward pass of [`Activate`].
struct ActivationGradient(Activation);

impl candle_core::CustomOp2 for ActivationGradient {
    fn name(&self) -> &'static str {
        "mb-stats-activation-gradient"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let grad = f32s(grad, grad_layout)?;
        let mut values = f32s(x, x_layout)?.to_vec();
        if values.len() != grad.len() {
            bail!("activation gradient: {} values, {} gradients", values.len(), grad.len())
        }
        values
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(x, g)| activation_gradient_in_place(x, g, self.0));
        Ok((CpuStorage::F32(values), x_layout.shape().clone()))
    }
}

/// Elements per task of the element-wise passes.
const CHUNK: usize = 1 << 14;

/// LayerNorm over the last dimension for training, differentiable: `(x − μ) / √(σ² + eps) · γ + β`
/// per row, forward and backward one pass each (the composed candle formula it replaces made
/// about twenty allocating passes). Sums per row in f64; the parameters' gradients are summed
/// over fixed blocks of rows in order, so no number depends on the thread count.
pub struct Norm {
    /// Added to the variance.
    pub eps: f32,
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "mb-stats-layer-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, weight, bias) = (
            f32s(x, x_layout)?,
            f32s(weight, weight_layout)?,
            f32s(bias, bias_layout)?,
        );
        let hidden = weight.len();
        if bias.len() != hidden || x.len() % hidden != 0 {
            bail!(
                "layer norm: input {:?}, weight [{hidden}], bias [{}]",
                x_layout.shape(),
                bias.len()
            )
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(hidden).zip(x.par_chunks(hidden)).for_each(|(y, x)| {
            let (mean, rstd) = moments(x, self.eps);
            for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(weight).zip(bias) {
                *y = (x - mean) * rstd * w + b;
            }
        });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let shape = x.shape().clone();
        let hidden = weight.dim(0)?;
        let rows = x.elem_count() / hidden;
        let all = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &NormGradient { eps: self.eps })?;
        Ok((
            Some(all.narrow(0, 0, rows)?.reshape(shape)?),
            Some(all.get(rows)?),
            Some(all.get(rows + 1)?),
        ))
    }
}

/// The backward pass of [`Norm`]: `[rows + 2, hidden]`, the input's gradient then γ's and β's.
struct NormGradient {
    eps: f32,
}

/// Rows per block of the parameters' gradient sums.
const NORM_ROWS: usize = 64;

impl CustomOp3 for NormGradient {
    fn name(&self) -> &'static str {
        "mb-stats-layer-norm-gradient"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, weight, grad) = (
            f32s(x, x_layout)?,
            f32s(weight, weight_layout)?,
            f32s(grad, grad_layout)?,
        );
        let hidden = weight.len();
        if grad.len() != x.len() || x.len() % hidden != 0 {
            bail!("layer norm gradient: input {:?}, weight [{hidden}]", x_layout.shape())
        }
        let rows = x.len() / hidden;
        let mut out = vec![0f32; (rows + 2) * hidden];
        let (dx, _) = out.split_at_mut(rows * hidden);
        // Per block of rows: the input's gradient in place, and the block's sums of g·x̂ and g.
        let partial: Vec<(Vec<f64>, Vec<f64>)> = dx
            .par_chunks_mut(NORM_ROWS * hidden)
            .zip(
                x.par_chunks(NORM_ROWS * hidden)
                    .zip(grad.par_chunks(NORM_ROWS * hidden)),
            )
            .map(|(dx, (x, g))| {
                let (mut dweight, mut dbias) = (vec![0f64; hidden], vec![0f64; hidden]);
                for ((dx, x), g) in dx.chunks_mut(hidden).zip(x.chunks(hidden)).zip(g.chunks(hidden)) {
                    let (mean, rstd) = moments(x, self.eps);
                    let (mut sum, mut sum_normed) = (0f64, 0f64);
                    for (((&x, &g), &w), (dw, db)) in
                        x.iter().zip(g).zip(weight).zip(dweight.iter_mut().zip(&mut dbias))
                    {
                        let normed = (x - mean) * rstd;
                        *dw += (g * normed) as f64;
                        *db += g as f64;
                        sum += (g * w) as f64;
                        sum_normed += (g * w * normed) as f64;
                    }
                    let (mean_g, mean_gn) = ((sum / hidden as f64) as f32, (sum_normed / hidden as f64) as f32);
                    for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(weight) {
                        *dx = rstd * (g * w - mean_g - (x - mean) * rstd * mean_gn);
                    }
                }
                (dweight, dbias)
            })
            .collect();
        let (dweight, dbias) = out[rows * hidden..].split_at_mut(hidden);
        for (w, b) in &partial {
            dweight.iter_mut().zip(w).for_each(|(d, p)| *d += *p as f32);
            dbias.iter_mut().zip(b).for_each(|(d, p)| *d += *p as f32);
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, hidden))))
    }
}

/// A row's mean and `1 / √(variance + eps)` (biased variance, sums in f64).
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let variance = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (variance + eps as f64).sqrt()) as f32)
}

/// Multi-head self-attention over packed sentences (no padding): from the fused projection
/// `[tokens, 3 · hidden]` (query, key, value side by side, heads contiguous within each), the
/// context `[tokens, hidden]` with heads side by side, `softmax(q kᵀ / √d) v` per sentence and head.
pub struct Attention {
    /// Tokens of each sentence, in order.
    pub lengths: Vec<usize>,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_size: usize,
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "mb-stats-attention-f32"
    }

    fn cpu_fwd(&self, qkv: &CpuStorage, qkv_layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (heads, head_size) = (self.heads, self.head_size);
        let hidden = heads * head_size;
        let tokens: usize = self.lengths.iter().sum();
        if qkv_layout.shape().dims2()? != (tokens, 3 * hidden) {
            bail!(
                "attention: qkv {:?} for {tokens} tokens of width {hidden}",
                qkv_layout.shape()
            )
        }
        let qkv = f32s(qkv, qkv_layout)?;
        let scale = 1.0 / (head_size as f32).sqrt();
        let mut context = vec![0f32; tokens * hidden];
        // One (context, qkv) pair of slices per sentence.
        let mut sentences = Vec::with_capacity(self.lengths.len());
        let (mut context_rest, mut qkv_rest) = (&mut context[..], qkv);
        for &length in &self.lengths {
            let (context_here, context_next) = context_rest.split_at_mut(length * hidden);
            let (qkv_here, qkv_next) = qkv_rest.split_at(length * 3 * hidden);
            sentences.push((length, context_here, qkv_here));
            (context_rest, qkv_rest) = (context_next, qkv_next);
        }
        sentences.into_par_iter().for_each(|(length, context, qkv)| {
            let mut weights = vec![0f32; length * length];
            let row = 3 * hidden as isize;
            for head in 0..heads {
                let (q, k, v) = (
                    head * head_size,
                    hidden + head * head_size,
                    2 * hidden + head * head_size,
                );
                // SAFETY: every matrix below lies inside its slice: `qkv` is `[length, 3 · hidden]`,
                // `context` `[length, hidden]` and `weights` `[length, length]`, all row-major, and
                // each head's columns are `head_size` wide from the offsets above.
                unsafe {
                    // weights = scale · q kᵀ
                    gemm::gemm(
                        length,
                        length,
                        head_size,
                        weights.as_mut_ptr(),
                        1,
                        length as isize,
                        false,
                        qkv.as_ptr().add(q),
                        1,
                        row,
                        qkv.as_ptr().add(k),
                        row,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                weights.chunks_exact_mut(length).for_each(softmax_in_place);
                // SAFETY: as above.
                unsafe {
                    // context[:, head] = weights · v
                    gemm::gemm(
                        length,
                        head_size,
                        length,
                        context.as_mut_ptr().add(head * head_size),
                        1,
                        hidden as isize,
                        false,
                        weights.as_ptr(),
                        1,
                        length as isize,
                        qkv.as_ptr().add(v),
                        1,
                        row,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        });
        Ok((CpuStorage::F32(context), Shape::from((tokens, hidden))))
    }
}

/// The contiguous f32 values behind a tensor.
fn f32s<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    contiguous(storage, layout, CpuStorage::as_slice::<f32>)
}

/// The contiguous values behind a tensor, of the type `values` reads.
fn contiguous<'a, T>(
    storage: &'a CpuStorage,
    layout: &Layout,
    values: fn(&'a CpuStorage) -> candle_core::Result<&'a [T]>,
) -> candle_core::Result<&'a [T]> {
    let data = values(storage)?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("contiguous tensors only"),
    }
}

fn softmax_in_place(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// The activation over a slice, compiled for AVX-512 and for AVX2 + FMA and picked at run time
/// (the crate is built for baseline x86-64, where these loops would not vectorise).
fn activate_in_place(values: &mut [f32], activation: Activation) {
    pointwise(values, activation, None)
}

/// `values` (the activation's inputs) replaced by `grad · activation′(values)`, as
/// [`activate_in_place`] is compiled.
fn activation_gradient_in_place(values: &mut [f32], grad: &[f32], activation: Activation) {
    pointwise(values, activation, Some(grad))
}

/// The activation (`grad`: `None`) or its gradient (`Some`) over a slice, on the widest vectors
/// this CPU has.
fn pointwise(values: &mut [f32], activation: Activation, grad: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { pointwise_avx512(values, activation, grad) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { pointwise_avx2(values, activation, grad) };
        }
    }
    pointwise_portable(values, activation, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pointwise_avx512(values: &mut [f32], activation: Activation, grad: Option<&[f32]>) {
    pointwise_portable(values, activation, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pointwise_avx2(values: &mut [f32], activation: Activation, grad: Option<&[f32]>) {
    pointwise_portable(values, activation, grad)
}

/// Branch-free per element (no calls into libm), so each loop vectorises.
#[inline(always)]
fn pointwise_portable(values: &mut [f32], activation: Activation, grad: Option<&[f32]>) {
    use std::f32::consts::{FRAC_1_SQRT_2, PI};
    // GELU (tanh form): 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x³).
    let c = (2.0 / PI).sqrt();
    // tanh(u) = 1 − 2 / (e^{2u} + 1)
    let tanh_of = |x: f32| 1.0 - 2.0 / (exp(2.0 * c * (x + 0.044715 * x * x * x)) + 1.0);
    match (activation, grad) {
        (Activation::Gelu, None) => values
            .iter_mut()
            .for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * FRAC_1_SQRT_2))),
        (Activation::GeluTanh, None) => values.iter_mut().for_each(|x| *x = 0.5 * *x * (1.0 + tanh_of(*x))),
        (Activation::Relu, None) => values.iter_mut().for_each(|x| *x = x.max(0.0)),
        // Φ(x) + x φ(x)
        (Activation::Gelu, Some(grad)) => values.iter_mut().zip(grad).for_each(|(x, g)| {
            let density = exp(-0.5 * *x * *x) * (0.5 * FRAC_1_SQRT_2 * std::f32::consts::FRAC_2_SQRT_PI);
            *x = g * (0.5 * (1.0 + erf(*x * FRAC_1_SQRT_2)) + *x * density)
        }),
        // 0.5 (1 + t) + 0.5 x (1 − t²) c (1 + 3 · 0.044715 x²)
        (Activation::GeluTanh, Some(grad)) => values.iter_mut().zip(grad).for_each(|(x, g)| {
            let t = tanh_of(*x);
            *x = g * (0.5 * (1.0 + t) + 0.5 * *x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * *x * *x))
        }),
        (Activation::Relu, Some(grad)) => values
            .iter_mut()
            .zip(grad)
            .for_each(|(x, g)| *x = if *x > 0.0 { *g } else { 0.0 }),
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7, inside f32 parity with PyTorch).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// e^x as Cephes' `expf` (relative error about 2e-7): x = n ln 2 + r with |r| ≤ ln 2 / 2, e^r by
/// a degree-6 polynomial, 2^n put straight into the exponent bits. Inputs are clamped to
/// [−87, 88], where e^x is a normal f32.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let poly = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    // 2^n for integral n in [−126, 127]: adding 1.5 · 2^23 puts n in the low mantissa bits
    // (integer ops only, unlike `as i32`, whose saturation checks stop the loop vectorising).
    let two_to_n = f32::from_bits((n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    (poly * r * r + r + 1.0) * two_to_n
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// bf16 falls back to f32 only on a CPU without bf16 products; other dtypes and devices
    /// run as asked.
    #[test]
    fn bf16_runs_f32_only_where_the_cpu_cannot() {
        assert_eq!(dtype_on(DType::BF16, true, false), DType::F32);
        assert_eq!(dtype_on(DType::BF16, true, true), DType::BF16);
        assert_eq!(dtype_on(DType::BF16, false, false), DType::BF16);
        for dtype in [DType::F32, DType::F16] {
            assert_eq!(dtype_on(dtype, true, false), dtype);
        }
    }

    /// The differentiable product and its gradients against candle's `matmul` on the same graph:
    /// f32 to rounding, bf16 products within bf16's precision.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_training_affine_map_and_its_gradients_match_candle() -> candle_core::Result<()> {
        let device = Device::Cpu;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (37, 50), &device)?)?;
        let weight = candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.3, (70, 50), &device)?)?;
        let target = Tensor::randn(0f32, 1.0, (37, 70), &device)?;
        // A loss whose gradient reaches both factors unevenly.
        let loss = |y: Tensor| (y - &target)?.sqr()?.sum_all();
        let bias = candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.5, 70, &device)?)?;
        let expected = loss(x.matmul(&weight.t()?)?.broadcast_add(&bias)?)?;
        let expected_grads = expected.backward()?;
        for (compute, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 2e-2)] {
            let Some(affine) = Affine::new(&x, &weight, compute) else {
                eprintln!("skipped {compute:?}: no kernels on this CPU");
                continue;
            };
            let ours = loss(x.apply_op3(&weight, &bias, affine)?)?;
            let grads = ours.backward()?;
            let relative = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
                let scale = b.abs()?.max_all()?.to_scalar::<f32>()?;
                Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
            };
            assert!(relative(&ours, &expected)? < tolerance, "{compute:?} loss");
            for var in [&x, &weight, &bias] {
                let (got, want) = (grads.get(var).unwrap(), expected_grads.get(var).unwrap());
                let error = relative(got, want)?;
                assert!(error < tolerance, "{compute:?} gradient: {error}");
            }
        }
        Ok(())
    }

    /// The fused training activation and LayerNorm, values and gradients, against candle's
    /// composed ops on the same graph (GELU's derivative in closed form against candle's).
    #[test]
    fn the_training_activation_and_norm_match_candle() -> candle_core::Result<()> {
        let device = Device::Cpu;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 2.0, (150, 40), &device)?)?;
        let weight = candle_core::Var::from_tensor(&Tensor::randn(1f32, 0.3, 40, &device)?)?;
        let bias = candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.3, 40, &device)?)?;
        let target = Tensor::randn(0f32, 1.0, (150, 40), &device)?;
        let loss = |y: Tensor| (y - &target)?.sqr()?.sum_all();
        let relative = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6);
            Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
        };
        let check =
            |ours: Tensor, expected: Tensor, vars: &[&candle_core::Var], what: &str| -> candle_core::Result<()> {
                let (ours, expected) = (loss(ours)?, loss(expected)?);
                assert!(relative(&ours, &expected)? < 1e-5, "{what} value");
                let (grads, expected_grads) = (ours.backward()?, expected.backward()?);
                for (i, var) in vars.iter().enumerate() {
                    let error = relative(grads.get(var).unwrap(), expected_grads.get(var).unwrap())?;
                    assert!(error < 1e-4, "{what} gradient {i}: {error}");
                }
                Ok(())
            };
        for (activation, expected) in [
            (Activation::Gelu, x.gelu_erf()?),
            (Activation::GeluTanh, x.gelu()?),
            (Activation::Relu, x.relu()?),
        ] {
            check(
                x.apply_op1(Activate(activation))?,
                expected,
                &[&x],
                &format!("{activation:?}"),
            )?;
        }
        let centred = x.broadcast_sub(&x.mean_keepdim(1)?)?;
        let variance = centred.sqr()?.mean_keepdim(1)?;
        let expected = centred
            .broadcast_div(&(variance + 1e-12)?.sqrt()?)?
            .broadcast_mul(&weight)?
            .broadcast_add(&bias)?;
        let ours = x.apply_op3(&weight, &bias, Norm { eps: 1e-12 })?;
        check(ours, expected, &[&x, &weight, &bias], "layer norm")
    }

    /// The kernels against candle's own ops (the definition, composed step by step).
    #[test]
    fn kernels_match_composed_candle_ops() -> candle_core::Result<()> {
        let device = Device::Cpu;
        let (batch, length, heads, head_size) = (3, 7, 2, 20);
        let hidden = heads * head_size;
        let x = Tensor::randn(0f32, 1.0, (batch * length, hidden), &device)?;
        // `[out, in]`, as checkpoints store it and as the kernel reads it.
        let weight = Tensor::randn(0f32, 0.3, (3 * hidden, hidden), &device)?;
        let bias = Tensor::randn(0f32, 0.3, 3 * hidden, &device)?;
        for activation in [
            None,
            Some(Activation::Gelu),
            Some(Activation::GeluTanh),
            Some(Activation::Relu),
        ] {
            let ours = x.apply_op3_no_bwd(&weight, &bias, &Linear { activation })?;
            let affine = x.matmul(&weight.t()?)?.broadcast_add(&bias)?;
            let expected = match activation {
                None => affine,
                Some(Activation::Gelu) => affine.gelu_erf()?,
                Some(Activation::GeluTanh) => affine.gelu()?,
                Some(Activation::Relu) => affine.relu()?,
            };
            let error = (ours - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(error < 1e-5, "linear {activation:?}: {error}");
        }

        // Attention on packed sentences against candle's ops on the padded batch with a mask.
        let lengths = [7, 4, 1];
        let tokens: usize = lengths.iter().sum();
        let qkv = x.narrow(0, 0, tokens)?.matmul(&weight.t()?)?;
        let ours = qkv.apply_op1_no_bwd(&Attention {
            lengths: lengths.to_vec(),
            heads,
            head_size,
        })?;
        let mut padded_rows = Vec::new();
        let mut padding = Vec::new();
        let mut start = 0;
        for &n in &lengths {
            padded_rows.push(qkv.narrow(0, start, n)?);
            padded_rows.push(Tensor::zeros((length - n, 3 * hidden), qkv.dtype(), &device)?);
            padding.extend((0..length).map(|i| if i < n { 0f32 } else { f32::MIN }));
            start += n;
        }
        let padded = Tensor::cat(
            &padded_rows.iter().filter(|t| t.dim(0).unwrap() > 0).collect::<Vec<_>>(),
            0,
        )?;
        let padding = Tensor::from_vec(padding, (batch, 1, 1, length), &device)?;
        let split = |i: usize| {
            padded
                .reshape((batch, length, 3, heads, head_size))?
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.t()?)? / (head_size as f64).sqrt())?.broadcast_add(&padding)?;
        let context = candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, length, hidden))?;
        let expected = Tensor::cat(
            &lengths
                .iter()
                .enumerate()
                .map(|(b, &n)| context.get(b)?.narrow(0, 0, n))
                .collect::<candle_core::Result<Vec<_>>>()?,
            0,
        )?;
        let error = (ours - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(error < 1e-5, "attention: {error}");
        Ok(())
    }
}
