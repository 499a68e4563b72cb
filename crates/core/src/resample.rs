//! Version-stable random draws of seeds and examples for the Multi-Bootstrap.
//!
//! Replicate `b` reads its own ChaCha8 stream (key = the RNG seed, stream = `b`), so a replicate's
//! draws depend only on (RNG seed, replicate index, design shape): the same on any machine and any
//! thread count, and the same for a cell analysed alone or with others. Within a replicate the
//! stream is read in a fixed order: base seeds, then treatment seeds (unpaired designs only), then
//! examples or clusters. Integers in `0..n` come from our own [`uniform_below`] rather than `rand`'s
//! distributions, whose algorithms may change between versions; ChaCha8's output is specified.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::design::{Design, Pairing};

/// What a replicate resamples: `both` (the default), `seeds` or `examples`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde_with::DeserializeFromStr)]
pub enum Sampling {
    /// Seeds and examples jointly (the Multi-Bootstrap).
    #[default]
    Both,
    /// Seeds only: every example once per replicate.
    Seeds,
    /// Examples (or clusters) only: every seed once per replicate.
    Examples,
}

impl Sampling {
    /// The spelling used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Sampling::Both => "both",
            Sampling::Seeds => "seeds",
            Sampling::Examples => "examples",
        }
    }

    /// Every sampling, in the order of the documentation.
    pub const ALL: [Sampling; 3] = [Sampling::Both, Sampling::Seeds, Sampling::Examples];

    fn seeds(self) -> bool {
        self != Sampling::Examples
    }

    fn examples(self) -> bool {
        self != Sampling::Seeds
    }
}

impl std::str::FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Sampling::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("expected both, seeds or examples, got '{s}'"))
    }
}

impl std::fmt::Display for Sampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One replicate's draw, as multiplicities.
#[derive(Clone, Debug, PartialEq)]
pub struct Draw {
    /// How many times each base seed was drawn.
    pub base_seeds: Vec<u32>,
    /// How many times each treatment seed was drawn (empty for one procedure).
    pub treatment_seeds: Vec<u32>,
    /// How many times each resampling unit (example or cluster) was drawn.
    pub units: Vec<u32>,
}

impl Draw {
    /// The weight of every example: the multiplicity of its unit.
    pub fn example_weights<'a>(&'a self, unit_of_example: &'a [u32]) -> impl Iterator<Item = f64> + 'a {
        unit_of_example.iter().map(|&u| self.units[u as usize] as f64)
    }
}

/// Draws replicates for one design shape.
#[derive(Clone, Debug)]
pub struct Resampler {
    key: [u8; 32],
    sampling: Sampling,
    n_base: usize,
    n_treatment: usize,
    paired: bool,
    n_units: usize,
}

impl Resampler {
    /// A resampler for `design` with the given sampling mode and RNG seed.
    pub fn new(design: &Design, sampling: Sampling, rng_seed: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&rng_seed.to_le_bytes());
        Self {
            key,
            sampling,
            n_base: design.base().seeds.len(),
            n_treatment: design.treatment().map_or(0, |t| t.seeds.len()),
            paired: design.pairing() == Pairing::Paired,
            n_units: design.n_units(),
        }
    }

    /// What this resampler draws.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// The full data: every seed and unit once.
    pub fn full(&self) -> Draw {
        Draw {
            base_seeds: vec![1; self.n_base],
            treatment_seeds: vec![1; self.n_treatment],
            units: vec![1; self.n_units],
        }
    }

    /// Replicate `replicate`'s draw, written into `out` (reused to avoid allocation).
    /// Time: O(seeds + units).
    pub fn draw_into(&self, replicate: u64, out: &mut Draw) {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(replicate);
        fill_counts(&mut out.base_seeds, self.n_base, self.sampling.seeds(), &mut rng);
        if self.paired {
            out.treatment_seeds.clone_from(&out.base_seeds);
        } else {
            fill_counts(
                &mut out.treatment_seeds,
                self.n_treatment,
                self.sampling.seeds(),
                &mut rng,
            );
        }
        fill_counts(&mut out.units, self.n_units, self.sampling.examples(), &mut rng);
    }

    /// Replicate `replicate`'s draw.
    pub fn draw(&self, replicate: u64) -> Draw {
        let mut out = self.full();
        self.draw_into(replicate, &mut out);
        out
    }
}

/// `n` draws with replacement from `0..n` as multiplicities, or all ones when not resampling.
fn fill_counts(counts: &mut Vec<u32>, n: usize, resample: bool, rng: &mut ChaCha8Rng) {
    counts.clear();
    if !resample {
        counts.resize(n, 1);
        return;
    }
    counts.resize(n, 0);
    for _ in 0..n {
        counts[uniform_below(rng, n as u64) as usize] += 1;
    }
}

/// A uniform integer in `0..n` (n > 0) by Lemire's multiply-and-reject method: unbiased, and
/// fixed here so the stream of draws never changes with a dependency upgrade.
pub fn uniform_below(rng: &mut impl Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_below_a_power_of_two_takes_the_top_bits() {
        let mut a = ChaCha8Rng::from_seed([1; 32]);
        let mut b = a.clone();
        for _ in 0..100 {
            assert_eq!(uniform_below(&mut a, 8), b.next_u64() >> 61);
        }
    }

    #[test]
    fn uniform_below_is_uniform() {
        let mut rng = ChaCha8Rng::from_seed([2; 32]);
        let n = 7u64;
        let draws = 70_000;
        let mut counts = [0f64; 7];
        (0..draws).for_each(|_| counts[uniform_below(&mut rng, n) as usize] += 1.0);
        let expected = draws as f64 / n as f64;
        let chi2: f64 = counts.iter().map(|c| (c - expected).powi(2) / expected).sum();
        // 6 degrees of freedom: P(chi2 > 22.46) = 0.001.
        assert!(chi2 < 22.46, "chi2 {chi2}, counts {counts:?}");
    }
}
