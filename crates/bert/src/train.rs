//! The training pass shared by every way of training a BERT (fine-tuning with a head, continued
//! masked-LM pretraining): the trainable tensors as variables, backward, clipping by global norm,
//! AdamW as PyTorch's, and the learning-rate schedule of transformers'
//! `get_linear_schedule_with_warmup`. What is trained and its loss are the caller's.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

/// How the optimiser updates: AdamW's learning rate and weight decay, the schedule's warmup and
/// the clipping norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimisation {
    /// Peak learning rate.
    pub lr: f64,
    /// Fraction of the steps spent warming the learning rate up from 0.
    pub warmup: f64,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Gradients are scaled down to at most this global L2 norm.
    pub max_grad_norm: f64,
}

/// What one optimiser step did.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The batch's mean loss before the update.
    pub loss: f64,
    /// The L2 norm of each trainable tensor's gradient before clipping, by Hugging Face name
    /// (`None` when the tensor got no gradient).
    pub gradient_norms: Vec<(String, Option<f64>)>,
}

/// Trainable tensors and their optimiser: one step is backward from a loss, clipping, and AdamW
/// at the schedule's learning rate.
pub struct Trainer {
    /// Every trainable tensor with its Hugging Face name.
    variables: Vec<(String, Var)>,
    optimiser: Optimiser,
    schedule: Schedule,
    step: usize,
    optimisation: Optimisation,
}

impl Trainer {
    /// Train `variables` (named as Hugging Face names them: the weight decay groups go by name)
    /// for `total_steps` steps.
    pub fn new(
        variables: Vec<(String, Var)>,
        optimisation: &Optimisation,
        total_steps: usize,
    ) -> candle_core::Result<Self> {
        Ok(Trainer {
            optimiser: Optimiser::new(&variables, optimisation)?,
            schedule: Schedule::new(optimisation, total_steps),
            step: 0,
            variables,
            optimisation: *optimisation,
        })
    }

    /// One optimiser step down `loss` (a scalar): gradients, clipping to the global norm, AdamW
    /// at the schedule's rate.
    pub fn step(&mut self, loss: &Tensor) -> candle_core::Result<StepReport> {
        let mut grads = loss.backward()?;
        let gradient_norms = self.clip(&mut grads)?;
        self.optimiser
            .step(&self.variables, &grads, self.schedule.lr(self.step))?;
        self.step += 1;
        Ok(StepReport {
            loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            gradient_norms,
        })
    }

    /// The trainable tensors by name.
    pub fn variables(&self) -> &[(String, Var)] {
        &self.variables
    }

    /// Scale the gradients to at most `max_grad_norm` in global L2 norm (as PyTorch's
    /// `clip_grad_norm_`); returns each tensor's norm before clipping.
    fn clip(&self, grads: &mut GradStore) -> candle_core::Result<Vec<(String, Option<f64>)>> {
        let mut norms = Vec::with_capacity(self.variables.len());
        let mut total = 0.0;
        for (name, var) in &self.variables {
            let norm = match grads.get(var.as_tensor()) {
                Some(g) => {
                    let squares = g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    total += squares;
                    Some(squares.sqrt())
                }
                None => None,
            };
            norms.push((name.clone(), norm));
        }
        let scale = self.optimisation.max_grad_norm / (total.sqrt() + 1e-6);
        if scale < 1.0 {
            for (_, var) in &self.variables {
                if let Some(g) = grads.get(var.as_tensor()) {
                    let scaled = (g * scale)?;
                    grads.insert(var.as_tensor(), scaled);
                }
            }
        }
        Ok(norms)
    }
}

/// `variables` under their Hugging Face names, each fused `attention.self.qkv` split into query,
/// key and value again, for saving.
pub fn split_qkv(variables: &[(String, Var)]) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut named = Vec::with_capacity(variables.len() + 8);
    for (name, var) in variables {
        let tensor = var.as_tensor().detach();
        match name
            .strip_suffix("attention.self.qkv.weight")
            .or(name.strip_suffix("attention.self.qkv.bias"))
        {
            Some(prefix) => {
                let suffix = if name.ends_with("weight") { "weight" } else { "bias" };
                let size = tensor.dim(0)? / 3;
                for (i, part) in ["query", "key", "value"].into_iter().enumerate() {
                    named.push((
                        format!("{prefix}attention.self.{part}.{suffix}"),
                        tensor.narrow(0, i * size, size)?.contiguous()?,
                    ));
                }
            }
            None => named.push((name.clone(), tensor)),
        }
    }
    Ok(named)
}

/// The learning rate at each step: linear warmup from 0 to the peak over the first
/// `ceil(warmup · total)` steps, then linear decay to 0 at `total` (transformers'
/// `get_linear_schedule_with_warmup`).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    peak: f64,
    warmup: usize,
    total: usize,
}

impl Schedule {
    /// The schedule of `optimisation` over `total` steps.
    pub fn new(optimisation: &Optimisation, total: usize) -> Self {
        Schedule {
            peak: optimisation.lr,
            warmup: (optimisation.warmup * total as f64).ceil() as usize,
            total,
        }
    }

    /// The learning rate of optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let factor = match step < self.warmup {
            true => step as f64 / self.warmup.max(1) as f64,
            false => (self.total.saturating_sub(step)) as f64 / self.total.saturating_sub(self.warmup).max(1) as f64,
        };
        self.peak * factor
    }
}

/// Whether AdamW decays a tensor: not biases and LayerNorm weights (as the BERT/GLUE recipe).
fn decays(name: &str) -> bool {
    !name.ends_with("bias") && !name.contains("LayerNorm")
}

/// AdamW with PyTorch's `torch.optim.AdamW` update (β 0.9/0.999, ε 1e-8, decoupled weight
/// decay). On the CPU it runs in place, two passes per tensor (candle-nn's allocates a dozen
/// temporaries per tensor and step, which at BERT size costs more than the passes); elsewhere
/// candle-nn's `AdamW`, in two groups.
enum Optimiser {
    /// Per trainable tensor, its first and second moments as one `[2, n]` tensor.
    InPlace {
        moments: Vec<Tensor>,
        weight_decay: f64,
        step: i32,
    },
    /// candle-nn's, with and without weight decay.
    CandleNn { decay: AdamW, no_decay: AdamW },
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Optimiser {
    fn new(variables: &[(String, Var)], settings: &Optimisation) -> candle_core::Result<Self> {
        let device = variables[0].1.device();
        if device.is_cpu() {
            let moments = variables
                .iter()
                .map(|(_, v)| Tensor::zeros((2, v.elem_count()), DType::F32, device))
                .collect::<candle_core::Result<_>>()?;
            return Ok(Optimiser::InPlace {
                moments,
                weight_decay: settings.weight_decay,
                step: 0,
            });
        }
        let group = |decay: bool| {
            let vars = variables
                .iter()
                .filter(|(name, _)| decays(name) == decay)
                .map(|(_, v)| v.clone())
                .collect();
            let weight_decay = if decay { settings.weight_decay } else { 0.0 };
            AdamW::new(
                vars,
                ParamsAdamW {
                    lr: settings.lr,
                    beta1: BETA1,
                    beta2: BETA2,
                    eps: EPSILON,
                    weight_decay,
                },
            )
        };
        Ok(Optimiser::CandleNn {
            decay: group(true)?,
            no_decay: group(false)?,
        })
    }

    /// One update of every tensor that has a gradient, at learning rate `lr`.
    fn step(&mut self, variables: &[(String, Var)], grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        match self {
            Optimiser::InPlace {
                moments,
                weight_decay,
                step,
            } => {
                *step += 1;
                let moments_update = MomentsUpdate {
                    beta1: BETA1 as f32,
                    beta2: BETA2 as f32,
                };
                for ((name, var), moment) in variables.iter().zip(moments.iter()) {
                    let Some(grad) = grads.get(var.as_tensor()) else {
                        continue;
                    };
                    moment.inplace_op2(&grad.contiguous()?, &moments_update)?;
                    let decay = if decays(name) { *weight_decay } else { 0.0 };
                    let update = ParameterUpdate {
                        shrink: (1.0 - lr * decay) as f32,
                        step_size: (lr / (1.0 - BETA1.powi(*step))) as f32,
                        correction2_sqrt: (1.0 - BETA2.powi(*step)).sqrt() as f32,
                        epsilon: EPSILON as f32,
                    };
                    var.as_tensor().inplace_op2(moment, &update)?;
                }
                Ok(())
            }
            Optimiser::CandleNn { decay, no_decay } => {
                decay.set_learning_rate(lr);
                no_decay.set_learning_rate(lr);
                decay.step(grads)?;
                no_decay.step(grads)
            }
        }
    }
}

/// The contiguous f32 values of a CPU tensor's storage.
fn f32_values<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("{what}: expected contiguous f32 values"),
    }
}

/// `m ← m + (1 − β₁)(g − m)`, `v ← β₂ v + (1 − β₂) g²` on moments `[2, n]` (m then v) from
/// gradient `g` `[n]`, as PyTorch's `lerp_` and `mul_().addcmul_()`.
struct MomentsUpdate {
    beta1: f32,
    beta2: f32,
}

impl InplaceOp2 for MomentsUpdate {
    fn name(&self) -> &'static str {
        "adamw-moments"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let grad = f32_values(s2, l2, "gradient")?;
        let (CpuStorage::F32(values), Some((start, end))) = (s1, l1.contiguous_offsets()) else {
            candle_core::bail!("moments: expected contiguous f32 values")
        };
        let (first, second) = values[start..end].split_at_mut(grad.len());
        let (keep1, keep2) = (1.0 - self.beta1, 1.0 - self.beta2);
        for ((m, v), &g) in first.iter_mut().zip(second.iter_mut()).zip(grad) {
            *m += keep1 * (g - *m);
            *v = *v * self.beta2 + keep2 * g * g;
        }
        Ok(())
    }
}

/// `θ ← θ (1 − lr·λ)`, then `θ ← θ − step_size · m / (√v / √(1 − β₂ᵗ) + ε)` (PyTorch's AdamW
/// with `step_size = lr / (1 − β₁ᵗ)`), from moments `[2, n]`.
struct ParameterUpdate {
    shrink: f32,
    step_size: f32,
    correction2_sqrt: f32,
    epsilon: f32,
}

impl InplaceOp2 for ParameterUpdate {
    fn name(&self) -> &'static str {
        "adamw-parameters"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let moments = f32_values(s2, l2, "moments")?;
        let (CpuStorage::F32(values), Some((start, end))) = (s1, l1.contiguous_offsets()) else {
            candle_core::bail!("parameters: expected contiguous f32 values")
        };
        let theta = &mut values[start..end];
        let (first, second) = moments.split_at(theta.len());
        for ((t, &m), &v) in theta.iter_mut().zip(first).zip(second) {
            *t *= self.shrink;
            *t -= self.step_size * m / (v.sqrt() / self.correction2_sqrt + self.epsilon);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays_as_transformers() {
        let optimisation = Optimisation {
            lr: 1.0,
            warmup: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
        };
        let schedule = Schedule::new(&optimisation, 95);
        // ceil(0.1 · 95) = 10 warmup steps.
        assert_eq!(schedule.lr(0), 0.0);
        assert!((schedule.lr(5) - 0.5).abs() < 1e-12);
        assert_eq!(schedule.lr(10), 1.0);
        assert!((schedule.lr(52) - 43.0 / 85.0).abs() < 1e-12);
        assert_eq!(schedule.lr(95), 0.0);
    }
}
