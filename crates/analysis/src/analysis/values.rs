//! The checks of single numeric settings, shared by the command line (clap's value parsers) and
//! the Python package, so both refuse a value with the same words: each takes the setting as
//! text and says what was expected.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A finite number (NaN and infinities give no meaningful result anywhere).
pub fn finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err("expected a finite number".into()),
    }
}

/// A number strictly between 0 and 1 (confidence levels, significance levels).
pub fn probability(text: &str) -> Result<f64, String> {
    match finite(text) {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err("expected a number strictly between 0 and 1".into()),
    }
}

/// A finite number at least 0.
pub fn non_negative(text: &str) -> Result<f64, String> {
    match finite(text) {
        Ok(x) if x >= 0.0 => Ok(x),
        _ => Err("expected a finite number at least 0".into()),
    }
}

/// A whole number at least 1.
pub fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number at least 1".into()),
    }
}

/// A number of bootstrap replicates: 2 to [`MAX_NBOOT`], the bound saying the memory a larger
/// number would need. Checked where it is made, however it is given (a flag, a key of an
/// experiment file, a Python argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct ReplicateCount(usize);

impl ReplicateCount {
    /// The paper's 1,000.
    pub const DEFAULT: ReplicateCount = ReplicateCount(1000);

    /// The number.
    pub fn get(self) -> usize {
        self.0
    }

    /// This count, or `most` (at least 2) when that is smaller.
    pub fn at_most(self, most: usize) -> Self {
        ReplicateCount(self.0.min(most.max(2)))
    }
}

impl Default for ReplicateCount {
    fn default() -> Self {
        ReplicateCount::DEFAULT
    }
}

impl TryFrom<u128> for ReplicateCount {
    type Error = String;
    fn try_from(n: u128) -> Result<Self, String> {
        match n {
            n if n > MAX_NBOOT as u128 => Err(format!(
                "at most {MAX_NBOOT} replicates (their values alone would need {} per cell)",
                replicate_memory(n.min(usize::MAX as u128) as usize)
            )),
            n if n >= 2 => Ok(ReplicateCount(n as usize)),
            _ => Err("expected a whole number of replicates, at least 2".into()),
        }
    }
}

impl TryFrom<u64> for ReplicateCount {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        ReplicateCount::try_from(n as u128)
    }
}

impl TryFrom<usize> for ReplicateCount {
    type Error = String;
    fn try_from(n: usize) -> Result<Self, String> {
        ReplicateCount::try_from(n as u128)
    }
}

impl FromStr for ReplicateCount {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().parse::<u128>() {
            Ok(n) => n.try_into(),
            _ => Err("expected a whole number of replicates, at least 2".into()),
        }
    }
}

impl fmt::Display for ReplicateCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A random seed: any whole number from 0 to 2⁶⁴ − 1.
pub fn rng_seed(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| "expected a whole number from 0 to 18446744073709551615".into())
}

/// The most bootstrap replicates: their values alone take 8 bytes per quantity and cell, so
/// 10⁸ replicates of a comparison (3 quantities) already need 2.4 GB.
pub const MAX_NBOOT: usize = 100_000_000;

/// The memory the replicate values of `nboot` replicates take per cell of a comparison, for messages.
pub fn replicate_memory(nboot: usize) -> String {
    let bytes = nboot as f64 * 3.0 * 8.0;
    match bytes {
        b if b >= 1e12 => format!("{:.1} TB", b / 1e12),
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b => format!("{:.1} MB", b / 1e6),
    }
}
