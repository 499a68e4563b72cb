//! The training pass shared by every way of training a BERT (fine-tuning with a head, continued
//! masked-LM pretraining): the trainable tensors as variables, backward, clipping by global norm,
//! AdamW as PyTorch's, and the learning-rate schedule of transformers'
//! `get_linear_schedule_with_warmup`. What is trained and its loss are the caller's.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use rayon::prelude::*;

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
        let grads = loss.backward()?;
        let clipping = self.clip(&grads)?;
        self.optimiser
            .step(&self.variables, &grads, clipping.scale, self.schedule.lr(self.step))?;
        self.step += 1;
        Ok(StepReport {
            loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            gradient_norms: clipping.norms,
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
            state.push((format!("moments/{name}"), moment.to_tensor(var)?));
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
            var.set(&get(&format!("value/{name}"))?.to_device(var.device())?)?;
            *moment = Moments::new(get(&format!("moments/{name}"))?, var)?;
        }
        let step = get("step")?.to_vec1::<u32>()?[0];
        self.step = step as usize;
        self.optimiser.step = step as i32;
        Ok(())
    }

    /// How to clip `grads` to at most `max_grad_norm` in global L2 norm, as PyTorch's
    /// `clip_grad_norm_`.
    fn clip(&self, grads: &GradStore) -> candle_core::Result<Clipping> {
        let mut norms = Vec::with_capacity(self.variables.len());
        let mut total = 0.0;
        for (name, var) in &self.variables {
            let norm = match grads.get(var.as_tensor()) {
                Some(g) => {
                    let squares = sum_of_squares(g)?;
                    total += squares;
                    Some(squares.sqrt())
                }
                None => None,
            };
            norms.push((name.clone(), norm));
        }
        let scale = self.optimisation.max_grad_norm / (total.sqrt() + 1e-6);
        Ok(Clipping {
            norms,
            scale: (scale < 1.0).then_some(scale as f32),
        })
    }
}

/// The gradients' norms and the clipping they call for.
struct Clipping {
    /// Each tensor's gradient norm by name (`None`: no gradient).
    norms: Vec<(String, Option<f64>)>,
    /// The factor that scales the gradients to the clipping norm; `None` when they are within it.
    scale: Option<f32>,
}

/// `Σ g²` in f64: on the CPU in one pass over fixed blocks (the same sum on any thread count),
/// elsewhere as tensor operations.
fn sum_of_squares(g: &Tensor) -> candle_core::Result<f64> {
    if g.device().is_cpu() && g.dtype() == DType::F32 && g.is_contiguous() {
        let (storage, layout) = g.storage_and_layout();
        if let candle_core::Storage::Cpu(storage) = &*storage {
            let values = f32_values(storage, layout, "gradient")?;
            let blocks: Vec<f64> = values
                .par_chunks(BLOCK)
                .map(|block| block.iter().map(|&x| f64::from(x) * f64::from(x)).sum())
                .collect();
            return Ok(blocks.iter().sum());
        }
    }
    g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// Values per block of the CPU's parallel passes over a tensor.
const BLOCK: usize = 1 << 14;

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
/// decay), its state (each tensor's first and second moments, and the step) ours on every device
/// so that it can be saved and restored. On the CPU the clipping, the moments and the parameter
/// are updated in place in one parallel pass per tensor (candle-nn's allocates a dozen
/// temporaries per tensor and step, which at BERT size costs more than the pass); elsewhere as
/// tensor operations.
struct Optimiser {
    moments: Vec<Moments>,
    weight_decay: f64,
    step: i32,
}

/// One tensor's first and second moments, `[2, n]` (m then v).
enum Moments {
    /// On the CPU: the values, updated with the parameter by [`AdamW`].
    Cpu(Vec<f32>),
    /// Elsewhere: a tensor on the parameter's device.
    Device(Tensor),
}

impl Moments {
    /// `moments` `[2, n]` kept as `var`'s are.
    fn new(moments: &Tensor, var: &Var) -> candle_core::Result<Self> {
        Ok(match var.device().is_cpu() {
            true => Moments::Cpu(moments.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?),
            false => Moments::Device(moments.to_device(var.device())?),
        })
    }

    /// The moments as a `[2, n]` tensor.
    fn to_tensor(&self, var: &Var) -> candle_core::Result<Tensor> {
        match self {
            Moments::Cpu(values) => Tensor::from_slice(values, (2, var.elem_count()), var.device()),
            Moments::Device(tensor) => tensor.copy(),
        }
    }
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Optimiser {
    fn new(variables: &[(String, Var)], settings: &Optimisation) -> candle_core::Result<Self> {
        let moments = variables
            .iter()
            .map(|(_, v)| Moments::new(&Tensor::zeros((2, v.elem_count()), DType::F32, v.device())?, v))
            .collect::<candle_core::Result<_>>()?;
        Ok(Optimiser {
            moments,
            weight_decay: settings.weight_decay,
            step: 0,
        })
    }

    /// One update of every tensor that has a gradient (scaled by `clip` where given), at
    /// learning rate `lr`.
    fn step(
        &mut self,
        variables: &[(String, Var)],
        grads: &GradStore,
        clip: Option<f32>,
        lr: f64,
    ) -> candle_core::Result<()> {
        self.step += 1;
        for ((name, var), moments) in variables.iter().zip(self.moments.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let decay = if decays(name) { self.weight_decay } else { 0.0 };
            let update = AdamW {
                clip,
                shrink: (1.0 - lr * decay) as f32,
                step_size: (lr / (1.0 - BETA1.powi(self.step))) as f32,
                correction2_sqrt: (1.0 - BETA2.powi(self.step)).sqrt() as f32,
                moments: std::sync::Mutex::new(Vec::new()),
            };
            match moments {
                Moments::Cpu(values) => {
                    *update.moments.lock().expect("not shared") = std::mem::take(values);
                    let done = var.as_tensor().inplace_op2(&grad.contiguous()?, &update);
                    *values = update.moments.into_inner().expect("not shared");
                    done?;
                }
                Moments::Device(tensor) => *tensor = update.with_tensors(var, tensor, grad)?,
            }
        }
        Ok(())
    }
}

/// One AdamW step of a parameter from its gradient `g` (first scaled by `clip`, as PyTorch's
/// `clip_grad_norm_`): `m ← m + (1 − β₁)(g − m)`, `v ← β₂ v + (1 − β₂) g²` (as PyTorch's `lerp_`
/// and `mul_().addcmul_()`), `θ ← θ (1 − lr·λ)`, then
/// `θ ← θ − step_size · m / (√v / √(1 − β₂ᵗ) + ε)` with `step_size = lr / (1 − β₁ᵗ)`.
struct AdamW {
    clip: Option<f32>,
    shrink: f32,
    step_size: f32,
    correction2_sqrt: f32,
    /// The CPU moments `[2, n]` for the in-place update, lent for one call.
    moments: std::sync::Mutex<Vec<f32>>,
}

impl AdamW {
    /// The update as tensor operations (any device); returns the new moments.
    fn with_tensors(&self, var: &Var, moment: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let mut g = grad.flatten_all()?.to_dtype(DType::F32)?;
        if let Some(clip) = self.clip {
            g = (g * f64::from(clip))?;
        }
        let m = ((moment.get(0)? * BETA1)? + (&g * (1.0 - BETA1))?)?;
        let v = ((moment.get(1)? * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
        let denominator = ((v.sqrt()? / f64::from(self.correction2_sqrt))? + EPSILON)?;
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

impl InplaceOp2 for AdamW {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let grad = f32_values(s2, l2, "gradient")?;
        let (CpuStorage::F32(values), Some((start, end))) = (s1, l1.contiguous_offsets()) else {
            candle_core::bail!("parameters: expected contiguous f32 values")
        };
        let theta = &mut values[start..end];
        let mut moments = self.moments.lock().expect("not shared");
        if grad.len() != theta.len() || moments.len() != 2 * theta.len() {
            candle_core::bail!(
                "adamw: {} values, {} gradients, {} moments",
                theta.len(),
                grad.len(),
                moments.len()
            )
        }
        let (first, second) = moments.split_at_mut(theta.len());
        let (beta1, beta2) = (BETA1 as f32, BETA2 as f32);
        let (keep1, keep2, epsilon) = (1.0 - beta1, 1.0 - beta2, EPSILON as f32);
        // Scaling by 1 is exact: the same values as no scaling, in a loop that vectorises.
        let clip = self.clip.unwrap_or(1.0);
        let (shrink, step_size, correction2_sqrt) = (self.shrink, self.step_size, self.correction2_sqrt);
        theta
            .par_chunks_mut(BLOCK)
            .zip(first.par_chunks_mut(BLOCK))
            .zip(second.par_chunks_mut(BLOCK))
            .zip(grad.par_chunks(BLOCK))
            .for_each(|(((theta, first), second), grad)| {
                let n = theta.len();
                let (first, second, grad) = (&mut first[..n], &mut second[..n], &grad[..n]);
                for i in 0..n {
                    let g = grad[i] * clip;
                    first[i] += keep1 * (g - first[i]);
                    second[i] = second[i] * beta2 + keep2 * g * g;
                    theta[i] *= shrink;
                    theta[i] -= step_size * first[i] / (second[i].sqrt() / correction2_sqrt + epsilon);
                }
            });
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

    /// The tensor-operation update (GPUs) is the in-place one (CPU) up to f32 rounding, with
    /// and without clipping, on more values than one parallel block.
    #[test]
    fn both_update_paths_agree() {
        let n = 3 * BLOCK + 5;
        let wave =
            |scale: f32, phase: f32| -> Vec<f32> { (0..n).map(|i| scale * (i as f32 * 0.37 + phase).sin()).collect() };
        let device = Device::Cpu;
        let grad = Tensor::from_vec(wave(0.3, 0.0), n, &device).unwrap();
        let start = [wave(0.02, 1.0), wave(0.02, 2.0).iter().map(|x| x * x).collect()].concat();
        let theta = Tensor::from_vec(wave(1.0, 3.0), n, &device).unwrap();
        for clip in [None, Some(0.25f32)] {
            let update = AdamW {
                clip,
                shrink: 0.999,
                step_size: 0.1,
                correction2_sqrt: 0.05,
                moments: std::sync::Mutex::new(start.clone()),
            };
            let (a, b) = (Var::from_tensor(&theta).unwrap(), Var::from_tensor(&theta).unwrap());
            a.as_tensor().inplace_op2(&grad, &update).unwrap();
            let moments = update
                .with_tensors(&b, &Tensor::from_slice(&start, (2, n), &device).unwrap(), &grad)
                .unwrap();
            let close = |x: Vec<f32>, y: Vec<f32>| {
                x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| (p - q).abs() <= 1e-6 * p.abs().max(1.0))
            };
            assert!(
                close(a.as_tensor().to_vec1().unwrap(), b.as_tensor().to_vec1().unwrap()),
                "{clip:?}"
            );
            let cpu_moments = update.moments.into_inner().unwrap();
            assert!(
                close(cpu_moments, moments.flatten_all().unwrap().to_vec1().unwrap()),
                "{clip:?}"
            );
        }
    }

    /// The CPU's blocked sum of squares is the definition's.
    #[test]
    fn the_gradient_norm_is_the_sum_of_squares() {
        let values: Vec<f32> = (0..2 * BLOCK + 7).map(|i| (i as f32 * 0.91).cos()).collect();
        let expected: f64 = values.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let g = Tensor::from_slice(&values, values.len(), &Device::Cpu).unwrap();
        let got = sum_of_squares(&g).unwrap();
        assert!((got - expected).abs() <= 1e-12 * expected, "{got} vs {expected}");
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
