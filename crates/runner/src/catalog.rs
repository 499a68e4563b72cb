//! The MultiBERTs catalog: 25 final checkpoints (`google/multiberts-seed_{0..24}`, step 2M) and
//! 29 intermediate checkpoints for each of seeds 0–4 (`google/multiberts-seed_{N}-step_{K}k`).

use mb_stats_bert::hub::{self, HubCache};
use mb_stats_core::step::Step;
use mb_stats_files::error::{Result, input};

/// Pretraining step of the final MultiBERTs checkpoints.
pub const FINAL_STEP: u64 = 2_000_000;
/// Number of seeds with a final checkpoint.
pub const N_SEEDS: u32 = 25;
/// Seeds with intermediate checkpoints.
pub const N_DYNAMICS_SEEDS: u32 = 5;

/// Steps (in thousands) of the intermediate checkpoints: 0–200k by 20k, then 300k–2000k by 100k.
pub fn intermediate_steps_k() -> Vec<u64> {
    (0..=200).step_by(20).chain((300..=2000).step_by(100)).collect()
}

/// One checkpoint of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Hub repo id.
    pub repo: String,
    /// Pretraining seed.
    pub seed: u32,
    /// Pretraining step.
    pub step: u64,
}

/// Which steps to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steps {
    /// The final checkpoint of each seed.
    Final,
    /// All 29 intermediate checkpoints (seeds 0–4 only).
    All,
    /// These steps of the intermediate checkpoints (seeds 0–4 only).
    List(Vec<u64>),
}

impl Steps {
    /// `final`, `all`, or a comma list of steps (`20k,200000,2000k`).
    pub fn parse(spec: &str) -> Result<Self> {
        match spec.trim() {
            "final" => Ok(Steps::Final),
            "all" => Ok(Steps::All),
            list => list
                .split(',')
                .map(|s| parse_step(s.trim()))
                .collect::<Result<Vec<_>>>()
                .map(Steps::List),
        }
    }
}

impl std::str::FromStr for Steps {
    type Err = mb_stats_files::error::Error;
    fn from_str(spec: &str) -> Result<Self> {
        Steps::parse(spec)
    }
}

/// A list of seeds, parsed once where it is written (`0-24`, `0,3,7`, `0-4,10`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds(pub Vec<u32>);

impl std::str::FromStr for Seeds {
    type Err = mb_stats_files::error::Error;
    fn from_str(spec: &str) -> Result<Self> {
        parse_seeds(spec).map(Seeds)
    }
}

fn parse_step(s: &str) -> Result<u64> {
    let step = s.parse::<Step>().ok().map(|s| s.0);
    let known = intermediate_steps_k();
    match step {
        Some(step) if step % 1000 == 0 && known.contains(&(step / 1000)) => Ok(step),
        _ => Err(input(format!(
            "step {s:?}: MultiBERTs has intermediate checkpoints at 0k–200k by 20k and 300k–2000k by 100k"
        ))),
    }
}

/// Parse a seed list: `0-24`, `0,3,7`, `0-4,10`.
pub fn parse_seeds(spec: &str) -> Result<Vec<u32>> {
    let bad = || input(format!("seeds {spec:?}: expected a list like 0-24 or 0,3,7"));
    let mut seeds = Vec::new();
    for part in spec.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    a.trim().parse::<u32>().map_err(|_| bad())?,
                    b.trim().parse::<u32>().map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(part.parse().map_err(|_| bad())?),
        }
    }
    seeds.sort_unstable();
    seeds.dedup();
    Ok(seeds)
}

/// The catalog entries for `seeds` × `steps`, or an error naming a checkpoint that does not exist.
pub fn multiberts(seeds: &[u32], steps: &Steps) -> Result<Vec<CatalogEntry>> {
    let steps_k: Vec<u64> = match steps {
        Steps::Final => {
            return seeds
                .iter()
                .map(|&seed| {
                    if seed >= N_SEEDS {
                        return Err(input(format!("seed {seed}: MultiBERTs has seeds 0-{}", N_SEEDS - 1)));
                    }
                    Ok(CatalogEntry {
                        repo: format!("google/multiberts-seed_{seed}"),
                        seed,
                        step: FINAL_STEP,
                    })
                })
                .collect();
        }
        Steps::All => intermediate_steps_k(),
        Steps::List(steps) => steps.iter().map(|s| s / 1000).collect(),
    };
    let mut entries = Vec::new();
    for &seed in seeds {
        if seed >= N_DYNAMICS_SEEDS {
            return Err(input(format!(
                "seed {seed}: intermediate checkpoints exist for seeds 0-{} only",
                N_DYNAMICS_SEEDS - 1
            )));
        }
        for &k in &steps_k {
            entries.push(CatalogEntry {
                repo: format!("google/multiberts-seed_{seed}-step_{k}k"),
                seed,
                step: k * 1000,
            });
        }
    }
    Ok(entries)
}

/// Download the `entries` not yet in the Hugging Face cache `cache` (once, on a machine with
/// network, before an offline job array), after checking the cache's file system has room for
/// all of them; `log` hears one line per checkpoint. Returns how many were downloaded.
pub fn download_missing(cache: &HubCache, entries: &[CatalogEntry], log: &dyn Fn(&str)) -> Result<usize> {
    let missing: Vec<&CatalogEntry> = entries.iter().filter(|e| !cache.is_cached(&e.repo, None)).collect();
    let needed = missing.len() as u64 * hub::BERT_BASE_DOWNLOAD_BYTES;
    let gb = |bytes: u64| bytes as f64 / 1e9;
    if let Some(free) = hub::free_bytes(cache.root())
        && free < needed
    {
        return Err(input(format!(
            "{}: {} checkpoints to download need ≈ {:.1} GB, but only {:.1} GB is free; free space or point HF_HUB_CACHE to a larger file system",
            cache.root().display(),
            missing.len(),
            gb(needed),
            gb(free)
        )));
    }
    for (k, entry) in missing.iter().enumerate() {
        log(&format!("[{}/{}] downloading {}", k + 1, missing.len(), entry.repo));
        cache.download_checkpoint(&entry.repo, None)?;
    }
    Ok(missing.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_25_final_and_5_by_29_intermediate_checkpoints() {
        let all_seeds: Vec<u32> = (0..25).collect();
        assert_eq!(multiberts(&all_seeds, &Steps::Final).unwrap().len(), 25);
        let dynamics = multiberts(&[0, 1, 2, 3, 4], &Steps::All).unwrap();
        assert_eq!(dynamics.len(), 145);
        assert_eq!(dynamics[0].repo, "google/multiberts-seed_0-step_0k");
        assert_eq!(dynamics[28].repo, "google/multiberts-seed_0-step_2000k");
        assert_eq!(dynamics[28].step, 2_000_000);
        assert!(multiberts(&[5], &Steps::All).is_err());
        assert!(multiberts(&[25], &Steps::Final).is_err());
    }

    #[test]
    fn seeds_and_steps_parse() {
        assert_eq!(parse_seeds("0-2, 7,1").unwrap(), vec![0, 1, 2, 7]);
        assert!(parse_seeds("3-1").is_err());
        assert!(parse_seeds("x").is_err());
        assert_eq!(
            Steps::parse("20k,2000000").unwrap(),
            Steps::List(vec![20_000, 2_000_000])
        );
        assert!(Steps::parse("30k").is_err());
    }
}
