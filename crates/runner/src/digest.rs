//! A digest that is the same on every machine and Rust version, for run keys and data identity.

use mb_stats_analysis::results::ExampleIds;

/// 64-bit FNV-1a.
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    /// Add raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Add a field with its length in front, so that ("ab", "c") and ("a", "bc") differ.
    pub fn field(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }

    /// Add example ids, typed.
    pub fn ids(&mut self, ids: &ExampleIds) {
        match ids {
            ExampleIds::Int(ids) => ids.iter().for_each(|id| self.field(&format!("int:{id}"))),
            ExampleIds::Text(ids) => ids.iter().for_each(|id| self.field(&format!("text:{id}"))),
        }
    }

    /// The digest as 16 hex digits.
    pub fn finish(&self) -> String {
        format!("{:016x}", self.0)
    }
}
