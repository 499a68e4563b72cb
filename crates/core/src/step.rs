//! Pretraining steps, in the one grammar every input uses: `2000000`, `200k`, `2M` (also `1.5M`
//! when it comes to a whole number of steps).

use std::fmt;
use std::str::FromStr;

/// A number of pretraining steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step(pub u64);

/// The largest step an `f64` holds exactly (2^53): `1.5M` is parsed as a float.
const MAX_STEP: f64 = 9_007_199_254_740_992.0;

impl FromStr for Step {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (number, scale) = match text.chars().last() {
            Some('M' | 'm') => (&text[..text.len() - 1], 1_000_000.0),
            Some('k' | 'K') => (&text[..text.len() - 1], 1_000.0),
            _ => (text, 1.0),
        };
        let value = number.parse::<f64>().ok().map(|v| v * scale);
        match value {
            Some(v) if v.fract() == 0.0 && (0.0..=MAX_STEP).contains(&v) => Ok(Step(v as u64)),
            _ => Err(format!("{text:?}: expected a step count like 2M, 200k or 2000000")),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_every_spelling() {
        for (text, step) in [
            ("2M", 2_000_000),
            ("2000k", 2_000_000),
            ("2000000", 2_000_000),
            ("20K", 20_000),
            ("1.5M", 1_500_000),
            ("0", 0),
        ] {
            assert_eq!(text.parse::<Step>(), Ok(Step(step)), "{text}");
        }
        for text in ["", "k", "-1", "1.5", "2x", "1e30"] {
            assert!(text.parse::<Step>().is_err(), "{text}");
        }
    }
}
