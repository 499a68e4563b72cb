//! The tensors of a checkpoint, under one canonical naming, from `model.safetensors` or a
//! zip-format `pytorch_model.bin`.
//!
//! Canonical names are those of Hugging Face `BertModel` plus the `cls.predictions.*` MLM head:
//! a `bert.` prefix (BertForPreTraining, BertForMaskedLM) is dropped and legacy LayerNorm
//! `gamma`/`beta` become `weight`/`bias`. A `.bin` is read in place ([`crate::pytorch`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::candle_error::candle_message;
use crate::pytorch::PthFile;
use mb_stats_files::error::{Result, input};

/// File names a checkpoint directory may hold its weights in, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Tensors by canonical name, converted to one dtype on one device when taken. Each is handed
/// out once and then dropped from here, so a model being built holds at most its own copy; a
/// `.bin` is read tensor by tensor as the model asks ([`PthFile`]).
pub struct Weights {
    /// Tensors in memory (safetensors, or given).
    tensors: RefCell<HashMap<String, Tensor>>,
    /// A `.bin` read on request, with each canonical name's name in the file.
    pth: Option<(PthFile, HashMap<String, String>)>,
    source: PathBuf,
    device: Device,
    dtype: DType,
}

impl Weights {
    /// Load the weights of the checkpoint directory `dir` (safetensors first, then `.bin`).
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let (safetensors, bin) = (dir.join(WEIGHT_FILES[0]), dir.join(WEIGHT_FILES[1]));
        let (source, tensors, pth) = if safetensors.is_file() {
            let raw = read_safetensors(&safetensors)?;
            let tensors = raw.into_iter().map(|(name, t)| (canonical_name(&name), t)).collect();
            (safetensors, tensors, None)
        } else if bin.is_file() {
            let file = PthFile::open(&bin)?;
            let names = file.names().map(|n| (canonical_name(n), n.to_string())).collect();
            (bin, HashMap::new(), Some((file, names)))
        } else {
            return Err(input(format!(
                "{}: no weights; expected model.safetensors or pytorch_model.bin",
                dir.display()
            )));
        };
        Ok(Weights {
            tensors: RefCell::new(tensors),
            pth,
            source,
            device: device.clone(),
            dtype,
        })
    }

    /// Weights from tensors already in memory (canonical names); `source` names them in errors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, source: &Path, device: &Device, dtype: DType) -> Self {
        Weights {
            tensors: RefCell::new(tensors),
            pth: None,
            source: source.to_path_buf(),
            device: device.clone(),
            dtype,
        }
    }

    /// Whether the checkpoint has a tensor `name` not taken yet.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.borrow().contains_key(name) || self.pth.as_ref().is_some_and(|(_, names)| names.contains_key(name))
    }

    /// The tensor `name` with exactly `shape`, in the model's dtype and device (taken: a second
    /// `get` of the same name finds nothing).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_optional(name, shape)?.ok_or_else(|| self.missing(name, shape))
    }

    /// Check every tensor of a `.bin` the model did not take (their storages' CRC), so damage
    /// anywhere in the file is refused; then drop them.
    pub fn finish(self) -> Result<()> {
        match &self.pth {
            Some((file, _)) => file.verify_rest(),
            None => Ok(()),
        }
    }

    /// Remove `name` (of `shape`) from the weights; from a `.bin`, read it now.
    fn take(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        let wrong = |found: &[usize]| {
            input(format!(
                "{}: tensor {name} has shape {found:?}, expected {shape:?} from config.json",
                self.source.display()
            ))
        };
        if let Some(tensor) = self.tensors.borrow_mut().remove(name) {
            if tensor.dims() != shape {
                return Err(wrong(tensor.dims()));
            }
            return self.finite(name, tensor).map(Some);
        }
        let Some((file, names)) = &self.pth else {
            return Ok(None);
        };
        let Some(in_file) = names.get(name) else {
            return Ok(None);
        };
        let found = file.shape(in_file).unwrap_or_default();
        if found != shape {
            return Err(wrong(found));
        }
        match file.read(in_file)? {
            Some(tensor) => self.finite(name, tensor).map(Some),
            None => Ok(None),
        }
    }

    /// `tensor` when every value is finite; otherwise the error names the tensor and the first
    /// NaN or infinity: one such weight makes every score NaN, which would be written as a
    /// result. Time: one sum over the tensor (the values are scanned only when it is not finite,
    /// which a sum of finite f16 values can also be).
    fn finite(&self, name: &str, tensor: Tensor) -> Result<Tensor> {
        let sum = tensor
            .sum_all()
            .and_then(|s| s.to_dtype(DType::F64))
            .and_then(|s| s.to_scalar::<f64>());
        if sum.is_ok_and(f64::is_finite) {
            return Ok(tensor);
        }
        let values = tensor
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| {
                input(format!(
                    "{}: tensor {name}: {}",
                    self.source.display(),
                    candle_message(&e)
                ))
            })?;
        match values.iter().position(|v| !v.is_finite()) {
            Some(at) => Err(input(format!(
                "{}: tensor {name} has the non-finite value {} at index {at}; the checkpoint is damaged",
                self.source.display(),
                values[at]
            ))),
            None => Ok(tensor),
        }
    }

    /// Like [`Weights::get`], but in f32 whatever the model's dtype: for the parameters used
    /// outside matrix products (embedding tables, LayerNorm), which PyTorch autocast keeps in f32.
    pub fn get_f32(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_optional_as(name, shape, DType::F32)?
            .ok_or_else(|| self.missing(name, shape))
    }

    fn missing(&self, name: &str, shape: &[usize]) -> mb_stats_files::error::Error {
        input(format!(
            "{}: missing tensor {name} (shape {shape:?})",
            self.source.display()
        ))
    }

    /// Like [`Weights::get`], but `None` when the checkpoint has no such tensor.
    pub fn get_optional(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        self.get_optional_as(name, shape, self.dtype)
    }

    fn get_optional_as(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Option<Tensor>> {
        let Some(tensor) = self.take(name, shape)? else {
            return Ok(None);
        };
        let converted = tensor.to_dtype(dtype).and_then(|t| t.to_device(&self.device));
        converted.map(Some).map_err(|e| {
            input(format!(
                "{}: tensor {name}: {}",
                self.source.display(),
                candle_message(&e)
            ))
        })
    }

    /// The file the weights came from.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

/// `bert.encoder.layer.0.attention.output.LayerNorm.gamma` → `encoder.layer.0.attention.output.LayerNorm.weight`.
pub fn canonical_name(name: &str) -> String {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        input(format!(
            "{}: not a readable safetensors file ({})",
            path.display(),
            candle_message(&e)
        ))
    })
}
