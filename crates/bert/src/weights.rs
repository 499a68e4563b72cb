//! The tensors of a checkpoint, under one canonical naming, from `model.safetensors` or a
//! zip-format `pytorch_model.bin`.
//!
//! Canonical names are those of Hugging Face `BertModel` plus the `cls.predictions.*` MLM head:
//! a `bert.` prefix (BertForPreTraining, BertForMaskedLM) is dropped and legacy LayerNorm
//! `gamma`/`beta` become `weight`/`bias`. A `.bin` is converted once to safetensors in the
//! mb-stats cache, so later loads read a flat file instead of unpickling.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::candle_error::candle_message;
use mb_stats_files::error::{Result, input};

/// File names a checkpoint directory may hold its weights in, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Tensors by canonical name, converted to one dtype on one device when taken.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    source: PathBuf,
    device: Device,
    dtype: DType,
}

impl Weights {
    /// Load the weights of the checkpoint directory `dir` (safetensors first, then `.bin`).
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let (source, raw) = if dir.join(WEIGHT_FILES[0]).is_file() {
            let path = dir.join(WEIGHT_FILES[0]);
            let raw = read_safetensors(&path)?;
            (path, raw)
        } else if dir.join(WEIGHT_FILES[1]).is_file() {
            let path = dir.join(WEIGHT_FILES[1]);
            (path.clone(), read_pytorch_cached(&path)?)
        } else {
            return Err(input(format!(
                "{}: no weights; expected model.safetensors or pytorch_model.bin",
                dir.display()
            )));
        };
        let tensors = raw.into_iter().map(|(name, t)| (canonical_name(&name), t)).collect();
        Ok(Weights {
            tensors,
            source,
            device: device.clone(),
            dtype,
        })
    }

    /// Weights from tensors already in memory (canonical names); `source` names them in errors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, source: &Path, device: &Device, dtype: DType) -> Self {
        Weights {
            tensors,
            source: source.to_path_buf(),
            device: device.clone(),
            dtype,
        }
    }

    /// The tensor `name` with exactly `shape`, in the model's dtype and device.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_optional(name, shape)?.ok_or_else(|| self.missing(name, shape))
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
        let Some(tensor) = self.tensors.get(name) else {
            return Ok(None);
        };
        if tensor.dims() != shape {
            return Err(input(format!(
                "{}: tensor {name} has shape {:?}, expected {shape:?} from config.json",
                self.source.display(),
                tensor.dims()
            )));
        }
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

/// Read a `.bin` through its safetensors conversion in the cache, making it on first use.
fn read_pytorch_cached(path: &Path) -> Result<HashMap<String, Tensor>> {
    let converted = conversion_path(path)?;
    if converted.is_file()
        && let Ok(tensors) = candle_core::safetensors::load(&converted, &Device::Cpu)
    {
        return Ok(tensors);
    }
    // Checked before anything is cached: a corrupt file errors here and is never converted.
    let tensors = read_pytorch(path)?;
    // A failed conversion only costs speed next time: the weights are already in memory.
    let _ = save_atomically(&tensors, &converted);
    Ok(tensors)
}

/// Read a zip-format PyTorch state dict after checking every entry's CRC-32 (a corrupted or
/// truncated download is refused, naming the file); an empty file, a legacy pickle and other
/// files are told apart in the message.
pub fn read_pytorch(path: &Path) -> Result<HashMap<String, Tensor>> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if length == 0 {
        return Err(input(format!(
            "{}: empty file (0 bytes; an interrupted download?); delete it and fetch the checkpoint again",
            path.display()
        )));
    }
    let is_zip = file.read_exact(&mut magic).is_ok() && &magic == b"PK\x03\x04";
    // Pickle protocol 2+ starts with 0x80 and the protocol number.
    let is_pickle = magic[0] == 0x80 && (2..=5).contains(&magic[1]);
    if !is_zip && !is_pickle {
        return Err(input(format!(
            "{}: not a PyTorch checkpoint (neither a zip archive nor a pickle); a damaged or wrong file?",
            path.display()
        )));
    }
    if !is_zip {
        return Err(input(format!(
            "{}: a legacy (non-zip) PyTorch pickle, which mb-stats cannot read; convert it once with \
             `python -c \"import torch; torch.save(torch.load('{0}', map_location='cpu'), '{0}')\"` \
             (torch >= 1.6 writes the zip format) or save model.safetensors next to config.json",
            path.display()
        )));
    }
    verify_zip(path)?;
    let tensors = candle_core::pickle::read_all(path).map_err(|e| {
        input(format!(
            "{}: not a readable PyTorch state dict ({})",
            path.display(),
            candle_message(&e)
        ))
    })?;
    Ok(tensors.into_iter().collect())
}

/// Reads every entry of the zip archive `path` to its end, which checks its CRC-32 against the
/// archive's directory. Time: one pass over the file (once per checkpoint: the conversion is cached).
fn verify_zip(path: &Path) -> Result<()> {
    let bad = |what: String| {
        input(format!(
            "{}: corrupt archive ({what}); delete it and fetch the checkpoint again",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name = entry.name().map(|n| n.to_string()).unwrap_or_else(|_| format!("#{i}"));
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| bad(format!("entry {name}: {e}")))?;
    }
    Ok(())
}

/// Where the safetensors conversion of `bin` lives: keyed by the file's resolved path, size and
/// modification time, so a replaced file is converted again.
fn conversion_path(bin: &Path) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let resolved = bin
        .canonicalize()
        .map_err(|e| input(format!("{}: {e}", bin.display())))?;
    let meta = std::fs::metadata(&resolved).map_err(|e| input(format!("{}: {e}", bin.display())))?;
    // The key only has to be stable on this machine: a changed hash is a cache miss, not an error.
    let mut hasher = std::hash::DefaultHasher::new();
    // "crc-checked": conversions made before archives were checked are not trusted.
    ("crc-checked", &resolved, meta.len(), meta.modified().ok()).hash(&mut hasher);
    Ok(cache_dir()
        .join("converted")
        .join(format!("{:016x}.safetensors", hasher.finish())))
}

/// The mb-stats cache: `$MB_STATS_CACHE`, else `$XDG_CACHE_HOME/mb-stats`, else `~/.cache/mb-stats`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MB_STATS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mb-stats")
}

fn save_atomically(tensors: &HashMap<String, Tensor>, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = mb_stats_files::output::temp_file_in(dir, ".safetensors")?;
    candle_core::safetensors::save(tensors, tmp.path()).map_err(std::io::Error::other)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
