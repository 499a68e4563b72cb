//! The training pass shared by every way of training a BERT (fine-tuning with a head, continued
//! masked-LM pretraining): the trainable tensors as variables, backward, clipping by global norm,
//! AdamW as PyTorch's, and the learning-rate schedule of transformers'
//! `get_linear_schedule_with_warmup`. What is trained and its loss are the caller's.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};

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

    /// Optimiser steps taken.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// Everything a resumed run needs to continue exactly: every variable (`value/NAME`), its
    /// AdamW moments (`moments/NAME`) and the step (`step`), as tensors to save.
    pub fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut state = Vec::with_capacity(2 * self.variables.len() + 1);
        for ((name, var), moment) in self.variables.iter().zip(&self.optimiser.moments) {
            state.push((format!("value/{name}"), var.as_tensor().detach().copy()?));
            state.push((format!("moments/{name}"), moment.copy()?));
        }
        let step = Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?;
        state.push(("step".to_string(), step));
        Ok(state)
    }

    /// Continue from `state` (as [`Trainer::state`] made it for the same variables).
    pub fn restore(&mut self, state: &std::collections::HashMap<String, Tensor>) -> candle_core::Result<()> {
        let get = |key: &str| {
            state
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("the saved state has no {key}")))
        };
        for ((name, var), moment) in self.variables.iter().zip(self.optimiser.moments.iter_mut()) {
            let device = var.device();
            var.set(&get(&format!("value/{name}"))?.to_device(device)?)?;
            *moment = get(&format!("moments/{name}"))?.to_device(device)?;
        }
        let step = get("step")?.to_vec1::<u32>()?[0];
        self.step = step as usize;
        self.optimiser.step = step as i32;
        Ok(())
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
/// decay), its state (each tensor's first and second moments as one `[2, n]` tensor, and the step)
/// ours on every device so that it can be saved and restored. On the CPU it runs in place, two
/// passes per tensor (candle-nn's allocates a dozen temporaries per tensor and step, which at BERT
/// size costs more than the passes); elsewhere as tensor operations.
struct Optimiser {
    moments: Vec<Tensor>,
    weight_decay: f64,
    step: i32,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Optimiser {
    fn new(variables: &[(String, Var)], settings: &Optimisation) -> candle_core::Result<Self> {
        let moments = variables
            .iter()
            .map(|(_, v)| Tensor::zeros((2, v.elem_count()), DType::F32, v.device()))
            .collect::<candle_core::Result<_>>()?;
        Ok(Optimiser {
            moments,
            weight_decay: settings.weight_decay,
            step: 0,
        })
    }

    /// One update of every tensor that has a gradient, at learning rate `lr`.
    fn step(&mut self, variables: &[(String, Var)], grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        for ((name, var), moment) in variables.iter().zip(self.moments.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let decay = if decays(name) { self.weight_decay } else { 0.0 };
            let update = ParameterUpdate {
                shrink: (1.0 - lr * decay) as f32,
                step_size: (lr / (1.0 - BETA1.powi(self.step))) as f32,
                correction2_sqrt: (1.0 - BETA2.powi(self.step)).sqrt() as f32,
                epsilon: EPSILON as f32,
            };
            if var.device().is_cpu() {
                let moments_update = MomentsUpdate {
                    beta1: BETA1 as f32,
                    beta2: BETA2 as f32,
                };
                moment.inplace_op2(&grad.contiguous()?, &moments_update)?;
                var.as_tensor().inplace_op2(moment, &update)?;
            } else {
                *moment = update.with_tensors(var, moment, grad)?;
            }
        }
        Ok(())
    }
}

impl ParameterUpdate {
    /// The moments' and the parameter's update as tensor operations (any device); returns the
    /// new moments.
    fn with_tensors(&self, var: &Var, moment: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let g = grad.flatten_all()?.to_dtype(DType::F32)?;
        let m = ((moment.get(0)? * BETA1)? + (&g * (1.0 - BETA1))?)?;
        let v = ((moment.get(1)? * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
        let denominator = ((v.sqrt()? / f64::from(self.correction2_sqrt))? + f64::from(self.epsilon))?;
        let step = ((&m / denominator)? * f64::from(self.step_size))?;
        let theta = var.as_tensor().flatten_all()?;
        let updated = ((theta * f64::from(self.shrink))? - step)?;
        var.set(&updated.reshape(var.shape())?)?;
        Tensor::stack(&[m, v], 0)
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
    use candle_core::Device;

    /// `trainer`'s tiny regression after `steps` more steps: the values of its two tensors.
    fn trained(trainer: &mut Trainer, x: &Tensor, y: &Tensor, steps: usize) -> Vec<Vec<f32>> {
        for _ in 0..steps {
            let (w, b) = (trainer.variables[0].1.as_tensor(), trainer.variables[1].1.as_tensor());
            let prediction = x.matmul(w).unwrap().broadcast_add(b).unwrap();
            let loss = (prediction - y).unwrap().sqr().unwrap().mean_all().unwrap();
            trainer.step(&loss).unwrap();
        }
        trainer
            .variables
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    fn trainer() -> Trainer {
        let w = Var::from_tensor(&Tensor::new(&[[0.5f32], [-0.25]], &Device::Cpu).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.1f32], &Device::Cpu).unwrap()).unwrap();
        let optimisation = Optimisation {
            lr: 0.05,
            warmup: 0.2,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
        };
        Trainer::new(
            vec![("dense.weight".into(), w), ("dense.bias".into(), b)],
            &optimisation,
            20,
        )
        .unwrap()
    }

    #[test]
    fn a_restored_trainer_continues_exactly_as_an_uninterrupted_one() {
        let x = Tensor::new(&[[1f32, 2.0], [3.0, -1.0], [0.5, 0.5]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[1f32], [0.0], [2.0]], &Device::Cpu).unwrap();
        let straight = trained(&mut trainer(), &x, &y, 20);
        let mut first = trainer();
        trained(&mut first, &x, &y, 8);
        let state: std::collections::HashMap<_, _> = first.state().unwrap().into_iter().collect();
        let mut resumed = trainer();
        resumed.restore(&state).unwrap();
        assert_eq!(resumed.steps_taken(), 8);
        assert_eq!(trained(&mut resumed, &x, &y, 12), straight, "bit for bit");
    }

    /// The tensor-operation update (GPUs) is the in-place one (CPU) up to f32 rounding.
    #[test]
    fn both_update_paths_agree() {
        let update = ParameterUpdate {
            shrink: 0.999,
            step_size: 0.1,
            correction2_sqrt: 0.05,
            epsilon: 1e-8,
        };
        let grad = Tensor::new(&[0.3f32, -0.2, 0.05], &Device::Cpu).unwrap();
        let start = Tensor::new(&[[0.01f32, 0.02, -0.03], [1e-4, 2e-4, 3e-4]], &Device::Cpu).unwrap();
        let theta = Tensor::new(&[1f32, -1.0, 0.5], &Device::Cpu).unwrap();
        let (a, b) = (Var::from_tensor(&theta).unwrap(), Var::from_tensor(&theta).unwrap());
        let moment = start.copy().unwrap();
        moment
            .inplace_op2(
                &grad,
                &MomentsUpdate {
                    beta1: BETA1 as f32,
                    beta2: BETA2 as f32,
                },
            )
            .unwrap();
        a.as_tensor().inplace_op2(&moment, &update).unwrap();
        let moments = update.with_tensors(&b, &start, &grad).unwrap();
        let close = |x: Vec<f32>, y: Vec<f32>| x.iter().zip(&y).all(|(p, q)| (p - q).abs() <= 1e-6 * p.abs().max(1.0));
        assert!(close(
            a.as_tensor().to_vec1().unwrap(),
            b.as_tensor().to_vec1().unwrap()
        ));
        assert!(close(
            moment.flatten_all().unwrap().to_vec1().unwrap(),
            moments.flatten_all().unwrap().to_vec1().unwrap()
        ));
    }

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
