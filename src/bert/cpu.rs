//! Fused f32 CPU kernels for the encoder's two hot spots: the dense layers and self-attention.
//!
//! Written here rather than composed from candle ops because, on BERT-base shapes and 2 cores,
//! candle's composition spent its time outside the arithmetic: its threaded GEMM scaled 1.4× from
//! one core to two (PyTorch's MKL 1.8×), every bias add, scale, mask and GELU was a separate pass
//! over memory, and attention ran as per-head matrix products after three transposing copies.
//! Here each thread multiplies its own block of rows with the single-threaded `gemm` kernel (the
//! one candle uses) into an output pre-filled with the bias and applies the activation to its
//! block; attention reads query, key and value straight out of the fused projection and writes the
//! context in place. Measured in README.md ("Speed of the BERT runtime").

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, bail};
use rayon::prelude::*;

use super::config::Activation;

/// `activation(x · W + b)` for `x` `[rows, in]`, `W` `[in, out]` (the transpose of the checkpoint's
/// `[out, in]` weight) and `b` `[out]`.
pub struct Linear {
    /// Applied element-wise to the result; `None` for a plain affine map.
    pub activation: Option<Activation>,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "mb-stats-linear-f32"
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
        let (rows, inner) = x_layout.shape().dims2()?;
        let (weight_inner, out) = weight_layout.shape().dims2()?;
        if weight_inner != inner || bias_layout.shape().dims1()? != out {
            bail!(
                "linear: input [{rows}, {inner}], weight {:?}, bias {:?}",
                weight_layout.shape(),
                bias_layout.shape()
            )
        }
        let (x, weight, bias) = (
            f32s(x, x_layout)?,
            f32s(weight, weight_layout)?,
            f32s(bias, bias_layout)?,
        );
        let mut result = vec![0f32; rows * out];
        let block = rows.div_ceil(rayon::current_num_threads()).max(1);
        result
            .par_chunks_mut(block * out)
            .zip(x.par_chunks(block * inner))
            .for_each(|(dst, lhs)| {
                for row in dst.chunks_exact_mut(out) {
                    row.copy_from_slice(bias);
                }
                // SAFETY: `dst` is `[dst.len() / out, out]`, `lhs` the matching `[.., inner]` rows and
                // `weight` `[inner, out]`, all row-major and in bounds for the strides given.
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
                        1,
                        out as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
                if let Some(activation) = self.activation {
                    activate_in_place(dst, activation);
                }
            });
        Ok((CpuStorage::F32(result), Shape::from((rows, out))))
    }
}

/// Multi-head self-attention: from the fused projection `[batch · length, 3 · hidden]` (query,
/// key, value side by side, heads contiguous within each) and the additive padding bias
/// `[batch, length]`, the context `[batch · length, hidden]` with heads side by side, as
/// `softmax(q kᵀ / √d + bias) v` per sentence and head.
pub struct Attention {
    /// Sentences in the batch.
    pub batch: usize,
    /// Padded tokens per sentence.
    pub length: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_size: usize,
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "mb-stats-attention-f32"
    }

    fn cpu_fwd(
        &self,
        qkv: &CpuStorage,
        qkv_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Attention {
            batch,
            length,
            heads,
            head_size,
        } = *self;
        let hidden = heads * head_size;
        if qkv_layout.shape().dims2()? != (batch * length, 3 * hidden)
            || bias_layout.shape().dims2()? != (batch, length)
        {
            bail!(
                "attention: qkv {:?}, bias {:?}",
                qkv_layout.shape(),
                bias_layout.shape()
            )
        }
        let (qkv, bias) = (f32s(qkv, qkv_layout)?, f32s(bias, bias_layout)?);
        let scale = 1.0 / (head_size as f32).sqrt();
        let mut context = vec![0f32; batch * length * hidden];
        context
            .par_chunks_mut(length * hidden)
            .zip(qkv.par_chunks(length * 3 * hidden))
            .zip(bias.par_chunks(length))
            .for_each(|((context, qkv), bias)| {
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
                    for scores in weights.chunks_exact_mut(length) {
                        scores.iter_mut().zip(bias).for_each(|(s, b)| *s += b);
                        softmax_in_place(scores);
                    }
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
        Ok((CpuStorage::F32(context), Shape::from((batch * length, hidden))))
    }
}

/// The contiguous f32 values behind a tensor.
fn f32s<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("f32 tensors only")
    };
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
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { activate_avx512(values, activation) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { activate_avx2(values, activation) };
        }
    }
    activate_portable(values, activation)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn activate_avx512(values: &mut [f32], activation: Activation) {
    activate_portable(values, activation)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn activate_avx2(values: &mut [f32], activation: Activation) {
    activate_portable(values, activation)
}

/// Branch-free per element (no calls into libm), so each loop vectorises.
#[inline(always)]
fn activate_portable(values: &mut [f32], activation: Activation) {
    match activation {
        Activation::Gelu => values
            .iter_mut()
            .for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2))),
        Activation::GeluTanh => values.iter_mut().for_each(|x| {
            let inner = (2.0 / std::f32::consts::PI).sqrt() * (*x + 0.044715 * *x * *x * *x);
            // tanh(u) = 1 − 2 / (e^{2u} + 1)
            *x = 0.5 * *x * (2.0 - 2.0 / (exp(2.0 * inner) + 1.0))
        }),
        Activation::Relu => values.iter_mut().for_each(|x| *x = x.max(0.0)),
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
    (poly * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// The kernels against candle's own ops (the definition, composed step by step).
    #[test]
    fn kernels_match_composed_candle_ops() -> candle_core::Result<()> {
        let device = Device::Cpu;
        let (batch, length, heads, head_size) = (3, 7, 2, 20);
        let hidden = heads * head_size;
        let x = Tensor::randn(0f32, 1.0, (batch * length, hidden), &device)?;
        let weight = Tensor::randn(0f32, 0.3, (hidden, 3 * hidden), &device)?;
        let bias = Tensor::randn(0f32, 0.3, 3 * hidden, &device)?;
        for activation in [
            None,
            Some(Activation::Gelu),
            Some(Activation::GeluTanh),
            Some(Activation::Relu),
        ] {
            let ours = x.apply_op3_no_bwd(&weight, &bias, &Linear { activation })?;
            let affine = x.matmul(&weight)?.broadcast_add(&bias)?;
            let expected = match activation {
                None => affine,
                Some(Activation::Gelu) => affine.gelu_erf()?,
                Some(Activation::GeluTanh) => affine.gelu()?,
                Some(Activation::Relu) => affine.relu()?,
            };
            let error = (ours - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(error < 1e-5, "linear {activation:?}: {error}");
        }

        let qkv = x.matmul(&weight)?;
        let lengths = [7, 4, 1];
        let padding: Vec<f32> = lengths
            .iter()
            .flat_map(|&n| (0..length).map(move |i| if i < n { 0.0 } else { f32::MIN }))
            .collect();
        let padding = Tensor::from_vec(padding, (batch, length), &device)?;
        let ours = qkv.apply_op2_no_bwd(
            &padding,
            &Attention {
                batch,
                length,
                heads,
                head_size,
            },
        )?;
        let split = |i: usize| {
            qkv.reshape((batch, length, 3, heads, head_size))?
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.t()?)? / (head_size as f64).sqrt())?
            .broadcast_add(&padding.reshape((batch, 1, 1, length))?)?;
        let expected = candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * length, hidden))?;
        let error = (ours - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(error < 1e-5, "attention: {error}");
        Ok(())
    }
}
