//! The runtime's settings as values: each is parsed once where it enters (`FromStr` for a flag,
//! `Deserialize` through the same `FromStr` for an experiment file) and passed on as a value, never re-parsed. Their parse
//! errors say what was expected without naming a flag or key; the caller adds the name the user
//! wrote.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};
use serde::{Deserialize, Deserializer};
use serde_with::DeserializeFromStr;

use crate::candle_error::candle_message;

/// Where the model runs: `auto` (the first GPU if the build has CUDA and one is present, else the
/// CPU), `cpu`, or `cuda:N` (`cuda` = `cuda:0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeserializeFromStr)]
pub enum DeviceSpec {
    /// The first GPU when there is one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device number N.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| "expected auto, cpu or cuda:N".to_string()),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The device itself; the error says why it cannot be used (no CUDA in this build, no GPU).
    pub fn open(self) -> Result<Device, String> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
            DeviceSpec::Cuda(ordinal) => Device::new_cuda(ordinal).map_err(|e| {
                if candle_core::utils::cuda_is_available() {
                    format!("no usable CUDA device ({}); use cpu", candle_message(&e))
                } else {
                    "this build has no CUDA; build with `--features cuda`, or use cpu".to_string()
                }
            }),
        }
    }

    /// Whether this names a GPU.
    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }
}

/// The activation dtype: `f32`, `f16` or `bf16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeserializeFromStr)]
pub enum Precision {
    /// 32-bit floats.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            "bf16" => Ok(Precision::Bf16),
            _ => Err("expected f32, f16 or bf16".to_string()),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        })
    }
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// Truncation length in tokens: at least 2 (`[CLS]` and `[SEP]`); a checkpoint's position limit
/// caps it when the model loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "usize")]
pub struct MaxLength(usize);

impl MaxLength {
    /// BERT's position limit: nothing a BERT can read is cut unless the user asks.
    pub const DEFAULT: MaxLength = MaxLength(512);

    /// The number of tokens.
    pub fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for MaxLength {
    type Error = String;
    fn try_from(n: usize) -> Result<Self, String> {
        match n {
            2.. => Ok(MaxLength(n)),
            _ => Err(format!("expected a whole number of tokens at least 2, got {n}")),
        }
    }
}

/// Padded tokens per batch, at least 1: the bound on a batch's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "usize")]
pub struct BatchTokens(usize);

impl BatchTokens {
    /// Large enough to keep every core busy on BERT-base, small enough for a laptop.
    pub const DEFAULT: BatchTokens = BatchTokens(8192);

    /// The number of tokens.
    pub fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for BatchTokens {
    type Error = String;
    fn try_from(n: usize) -> Result<Self, String> {
        match n {
            1.. => Ok(BatchTokens(n)),
            _ => Err("expected a whole number of tokens at least 1, got 0".to_string()),
        }
    }
}

/// Parses a whole number, then checks it as the type does (for flags).
macro_rules! whole_number_from_str {
    ($($t:ty),*) => {$(
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let n: usize = s.trim().parse().map_err(|_| format!("expected a whole number of tokens, got {s:?}"))?;
                n.try_into()
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
whole_number_from_str!(MaxLength, BatchTokens);

/// How and where the BERT runtime computes, one type for an experiment's `[runtime]` and for the
/// commands that run a model without one (`embed`, `bench-bert`, `bench-mlm`): each setting has
/// its default here and its check in its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Where the model runs.
    pub device: DeviceSpec,
    /// The dtype products are computed in.
    pub dtype: Precision,
    /// Truncation length.
    pub max_length: MaxLength,
    /// Padded tokens per batch.
    pub batch_tokens: BatchTokens,
}

impl Runtime {
    /// Every setting at its default: `auto`, `f32`, 512 tokens, 8192 tokens per batch.
    pub const DEFAULT: Runtime = Runtime {
        device: DeviceSpec::Auto,
        dtype: Precision::F32,
        max_length: MaxLength::DEFAULT,
        batch_tokens: BatchTokens::DEFAULT,
    };
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::DEFAULT
    }
}

/// How token vectors become one vector per input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeserializeFromStr)]
pub enum Pooling {
    /// The `[CLS]` (first) token.
    Cls,
    /// Mean over the non-padding tokens, `[CLS]` and `[SEP]` included (as sentence-transformers).
    Mean,
    /// No pooling: one vector per token.
    None,
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "none" => Ok(Pooling::None),
            _ => Err(format!("expected cls, mean or none, got {s:?}")),
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::None => "none",
        })
    }
}

/// Which hidden states to use (0 = the embeddings output): `all`, `last`, or a list like
/// `0,6,12` (in a TOML file also `[0, 6, 12]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layers {
    /// Every hidden state, embeddings output included.
    All,
    /// The last layer's output.
    Last,
    /// These layers, in this order, each once.
    List(Vec<usize>),
}

impl FromStr for Layers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(Layers::All),
            "last" => Ok(Layers::Last),
            list => list
                .split(',')
                .map(|part| part.trim().parse().ok())
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| "expected all, last or a list of layers like 0,6,12".to_string())
                .and_then(Layers::list),
        }
    }
}

impl<'de> Deserialize<'de> for Layers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "expected \"last\", \"all\" or a list of layer numbers like [0, 6, 12]"
        )]
        enum Written {
            Text(String),
            List(Vec<usize>),
        }
        match Written::deserialize(deserializer)? {
            Written::Text(text) => match text.as_str() {
                "all" => Ok(Layers::All),
                "last" => Ok(Layers::Last),
                _ => Err(format!("expected \"last\", \"all\" or a list of layers, got {text:?}")),
            },
            Written::List(list) => Layers::list(list),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Layers {
    /// A list of layers: at least one, none twice.
    pub fn list(layers: Vec<usize>) -> Result<Layers, String> {
        if layers.is_empty() {
            return Err("expected at least one layer (or \"last\" or \"all\")".to_string());
        }
        let mut sorted = layers.clone();
        sorted.sort_unstable();
        match sorted.windows(2).find(|w| w[0] == w[1]) {
            Some(pair) => Err(format!("layer {} is listed twice", pair[0])),
            None => Ok(Layers::List(layers)),
        }
    }

    /// The layer numbers for a model with `n_hidden_states` hidden states (embeddings output
    /// included); the error names a layer the model does not have.
    pub fn resolve(&self, n_hidden_states: usize) -> Result<Vec<usize>, String> {
        match self {
            Layers::All => Ok((0..n_hidden_states).collect()),
            Layers::Last => Ok(vec![n_hidden_states - 1]),
            Layers::List(list) => match list.iter().find(|&&l| l >= n_hidden_states) {
                Some(bad) => Err(format!("layer {bad}: the model has layers 0-{}", n_hidden_states - 1)),
                None => Ok(list.clone()),
            },
        }
    }
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layers::All => f.write_str("all"),
            Layers::Last => f.write_str("last"),
            Layers::List(list) => {
                let parts: Vec<String> = list.iter().map(|l| l.to_string()).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_their_spelling() {
        for spec in ["auto", "cpu", "cuda:1"] {
            assert_eq!(spec.parse::<DeviceSpec>().unwrap().to_string(), spec);
        }
        assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        for spec in ["f32", "f16", "bf16"] {
            assert_eq!(spec.parse::<Precision>().unwrap().to_string(), spec);
        }
        for spec in ["all", "last", "0,6,12"] {
            assert_eq!(spec.parse::<Layers>().unwrap().to_string(), spec);
        }
        assert!("1,1".parse::<Layers>().unwrap_err().contains("twice"));
        assert!("x".parse::<Layers>().is_err());
    }

    #[test]
    fn layers_are_checked_against_the_model_depth() {
        assert_eq!(Layers::Last.resolve(3), Ok(vec![2]));
        assert_eq!(Layers::All.resolve(3), Ok(vec![0, 1, 2]));
        assert_eq!(
            Layers::List(vec![0, 7]).resolve(3),
            Err("layer 7: the model has layers 0-2".to_string())
        );
    }

    #[test]
    fn a_toml_file_is_read_by_the_same_parsers() {
        #[derive(Deserialize)]
        struct Section {
            device: DeviceSpec,
            layers: Layers,
            other: Layers,
        }
        let s: Section = toml::from_str("device = \"cuda:2\"\nlayers = [0, 2]\nother = \"last\"").unwrap();
        assert_eq!(
            (s.device, s.layers, s.other),
            (DeviceSpec::Cuda(2), Layers::List(vec![0, 2]), Layers::Last)
        );
        assert!(toml::from_str::<Section>("device = \"tpu\"\nlayers = []\nother = \"all\"").is_err());
    }
}
