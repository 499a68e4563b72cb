//! `mb-stats power`: how many seeds (and examples) a study needs to detect an effect of size D.
//! The observed comparison is resampled at smaller sizes — seeds (and examples) drawn with
//! replacement — the Multi-Bootstrap test is run on each resampled study with its replicates
//! recentred so that the true effect is D, and power is the share of studies that reject
//! H0 at level α.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::design::{Cell, Parts, Prepared, pair_seeds};
use super::{Method, Options};
use crate::results::ResultsTable;
use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
use mb_stats_core::engine::Engine;
use mb_stats_core::interval::{SeedLevel, Summarizer};
use mb_stats_core::resample::{Resampler, uniform_below};
use mb_stats_files::error::{Error, Result, input};

/// The settings of `mb-stats power`.
#[derive(Clone, Debug)]
pub struct PowerOptions {
    /// The comparison and the inner bootstrap (nboot, sampling, alternative, RNG seed).
    pub analysis: Options,
    /// The effect to detect, in metric units.
    pub effect: f64,
    /// Significance level.
    pub alpha: f64,
    /// Seed counts to try (per side).
    pub seeds: Vec<usize>,
    /// Example counts to try (examples or clusters).
    pub examples: Vec<usize>,
    /// Simulated studies per size.
    pub simulations: usize,
}

/// Power at one study size.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerRow {
    /// Cell of `--by`.
    pub cell: String,
    /// Seeds per side.
    pub seeds: usize,
    /// Examples (or clusters).
    pub examples: usize,
    /// Share of simulated studies that reject H0.
    pub power: f64,
    /// Its Monte-Carlo standard error.
    pub standard_error: f64,
}

/// Everything `mb-stats power` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerReport {
    /// Settings of the inner test.
    pub method: Method,
    /// The effect size.
    pub effect: f64,
    /// The level.
    pub alpha: f64,
    /// Simulated studies per size.
    pub simulations: usize,
    /// The observed effect per cell (the replicates are shifted from it to the effect).
    pub observed: Vec<(String, f64)>,
    /// One row per cell and size.
    pub rows: Vec<PowerRow>,
}

/// The most seeds per procedure a simulated study may draw.
pub const MAX_SEEDS: usize = 100_000;

/// The most memory one simulated study may hold (its copied outcomes), in bytes.
pub const MAX_STUDY_BYTES: f64 = 16e9;

/// The most simulated studies per size.
pub const MAX_SIMULATIONS: usize = 1_000_000;

/// Refuses sizes whose simulated studies would not fit in memory, saying what they would need:
/// a study copies, per drawn seed, every run's label, prediction and score of every drawn
/// example (of `n` examples in `n_units` resampled units).
fn check_study_memory(base: &Side, treatment: &Side, n: usize, n_units: usize, options: &PowerOptions) -> Result<()> {
    let runs = |side: &Side| side.seeds.iter().map(|s| s.runs.len()).max().unwrap_or(0) as f64;
    let runs_per_seed = runs(base) + runs(treatment);
    let examples = options
        .examples
        .iter()
        .max()
        .map_or(n as f64, |&m| m as f64 * n as f64 / n_units.max(1) as f64);
    for &s in &options.seeds {
        let bytes = s as f64 * runs_per_seed * examples * 3.0 * 8.0;
        if bytes > MAX_STUDY_BYTES {
            return Err(Error::named(format!(
                "{{seeds}} {s} with {examples:.0} examples: one simulated study would hold {:.1} GB of outcomes (at most {:.0} GB); try fewer seeds or {{examples}}",
                bytes / 1e9,
                MAX_STUDY_BYTES / 1e9
            )));
        }
    }
    Ok(())
}

/// Runs `mb-stats power`.
pub fn power(table: &ResultsTable, options: &PowerOptions) -> Result<PowerReport> {
    check_options(options)?;
    let analysis = &options.analysis;
    let prepared = Prepared::new(table, analysis)?;
    let (mut rows, mut observed) = (Vec::new(), Vec::new());
    for (cell, cell_rows) in prepared.cells() {
        let fail = |e: String| input(format!("cell {}: {e}", cell.label()));
        let study = Observed::new(&prepared, cell, cell_rows, analysis)?;
        observed.push((cell.label().to_string(), study.delta));
        check_study_memory(&study.base, &study.treatment, study.n, study.members.len(), options)?;
        for &s in &options.seeds {
            for &m in &options.examples {
                let rejections = study.rejections(s, m, options).map_err(fail)?;
                let power = rejections as f64 / options.simulations as f64;
                let standard_error = (power * (1.0 - power) / options.simulations as f64).sqrt();
                rows.push(PowerRow {
                    cell: cell.label().to_string(),
                    seeds: s,
                    examples: m,
                    power,
                    standard_error,
                });
            }
        }
    }
    Ok(PowerReport {
        method: prepared.method(),
        effect: options.effect,
        alpha: options.alpha,
        simulations: options.simulations,
        observed,
        rows,
    })
}

/// Checks the settings of `mb-stats power` that the analysis options do not cover.
fn check_options(options: &PowerOptions) -> Result<()> {
    if options.analysis.comparison.is_none() {
        return Err(Error::named(
            "power needs a comparison: {base} FILTER {treatment} FILTER",
        ));
    }
    if !(options.alpha > 0.0 && options.alpha < 1.0) {
        return Err(Error::named(format!(
            "{{alpha}} must be strictly between 0 and 1, got {}",
            options.alpha
        )));
    }
    if options.simulations == 0 || options.seeds.contains(&0) || options.examples.contains(&0) {
        return Err(Error::named("{simulations}, {seeds} and {examples} must be positive"));
    }
    if options.simulations > MAX_SIMULATIONS {
        return Err(Error::named(format!(
            "{{simulations}} {}: at most {MAX_SIMULATIONS} simulated studies per size",
            options.simulations
        )));
    }
    if let Some(s) = options.seeds.iter().find(|&&s| s > MAX_SEEDS) {
        return Err(Error::named(format!(
            "{{seeds}} {s}: at most {MAX_SEEDS} seeds per procedure (each simulated study holds a copy of every \
             drawn seed's runs: {s} seeds would need more than {:.0} GB)",
            *s as f64 * 24.0 / 1e9
        )));
    }
    Ok(())
}

/// One cell's observed comparison, from which the smaller studies are drawn.
struct Observed {
    /// The base side (paired seeds only, when paired).
    base: Side,
    /// The treatment side.
    treatment: Side,
    /// The cluster of each example, when resampled by cluster.
    clusters: Option<Vec<u32>>,
    /// The examples of each resampled unit.
    members: Vec<Vec<usize>>,
    /// Examples.
    n: usize,
    /// The observed δ on the full data.
    delta: f64,
}

impl Observed {
    /// The comparison of `cell` and its full-data δ.
    fn new(prepared: &Prepared, cell: &Cell, cell_rows: &[usize], analysis: &Options) -> Result<Self> {
        let (b, t) = prepared.sides(cell, cell_rows)?;
        let where_ = |side: &str| format!("the {side} side (cell {})", cell.label());
        let Parts {
            base,
            treatment,
            clusters,
            n,
        } = prepared.parts(&b, Some(&t), &where_)?;
        let treatment = treatment.expect("a comparison has a treatment side");
        let (base, treatment) = match analysis.pairing {
            Pairing::Paired => {
                let (b, t, _) = pair_seeds(base, treatment);
                (b, t)
            }
            Pairing::Unpaired => (base, treatment),
        };
        let fail = |e: String| input(format!("cell {}: {e}", cell.label()));
        let full = Design::compare(base.clone(), treatment.clone(), analysis.pairing, clusters.clone())
            .map_err(|e| fail(e.0))?;
        let engine = Engine::new(&full, analysis.metric).map_err(fail)?;
        let point = engine.evaluate(&Resampler::new(&full, analysis.sampling, 0).full());
        let delta = point.treatment.unwrap_or(f64::NAN) - point.base;
        let units: Vec<u32> = clusters.clone().unwrap_or_else(|| (0..n as u32).collect());
        let n_units = units.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_units];
        units.iter().enumerate().for_each(|(e, &u)| members[u as usize].push(e));
        Ok(Self {
            base,
            treatment,
            clusters,
            members,
            n,
            delta,
        })
    }

    /// How many of the simulated studies of `s` seeds and `m` units reject H0. The draws of
    /// every size come from their own RNG seeded by the options' seed, `s` and `m`.
    fn rejections(&self, s: usize, m: usize, options: &PowerOptions) -> std::result::Result<usize, String> {
        let mut rng = ChaCha8Rng::seed_from_u64(options.analysis.rng_seed ^ ((s as u64) << 32) ^ m as u64);
        let mut rejections = 0usize;
        for sim in 0..options.simulations {
            if mb_stats_core::interrupt::requested() {
                break;
            }
            let design = self.draw_study(&mut rng, s, m, options.analysis.pairing)?;
            rejections += usize::from(self.test(&design, sim, options)? <= options.alpha);
        }
        Ok(rejections)
    }

    /// A study of `s` seeds (drawn together when paired) and `m` units, drawn with replacement.
    fn draw_study(
        &self,
        rng: &mut ChaCha8Rng,
        s: usize,
        m: usize,
        pairing: Pairing,
    ) -> std::result::Result<Design, String> {
        let pick_seeds = |side: &Side, draws: &[usize]| Side {
            seeds: draws.iter().map(|&i| side.seeds[i].clone()).collect(),
        };
        let draw = |rng: &mut ChaCha8Rng, n: usize, k: usize| {
            (0..k)
                .map(|_| uniform_below(rng, n as u64) as usize)
                .collect::<Vec<_>>()
        };
        let base_draw = draw(rng, self.base.seeds.len(), s);
        let treatment_draw = match pairing {
            Pairing::Paired => base_draw.clone(),
            Pairing::Unpaired => draw(rng, self.treatment.seeds.len(), s),
        };
        let unit_draw = draw(rng, self.members.len(), m);
        let (examples, sub_clusters) = expand_units(&self.members, &unit_draw);
        let sub = |side: Side| relabel(restrict(side, &examples));
        Design::compare(
            sub(pick_seeds(&self.base, &base_draw)),
            sub(pick_seeds(&self.treatment, &treatment_draw)),
            pairing,
            self.clusters.as_ref().map(|_| sub_clusters),
        )
        .map_err(|e| e.0)
    }

    /// The Multi-Bootstrap p-value of simulated study `sim`, its replicates recentred so that
    /// the true effect is the options' effect.
    fn test(&self, design: &Design, sim: usize, options: &PowerOptions) -> std::result::Result<f64, String> {
        let analysis = &options.analysis;
        let engine = Engine::new(design, analysis.metric)?;
        let resampler = Resampler::new(design, analysis.sampling, analysis.rng_seed.wrapping_add(sim as u64));
        let reps = engine.bootstrap(&resampler, analysis.nboot.get());
        super::interrupted()?;
        let shift = options.effect - self.delta;
        let deltas: Vec<f64> = reps
            .treatment
            .iter()
            .flatten()
            .zip(&reps.base)
            .map(|(t, b)| t - b + shift)
            .collect();
        let point = engine.evaluate(&resampler.full());
        let estimate = point.treatment.unwrap_or(f64::NAN) - point.base + shift;
        let level = SeedLevel::delta(
            analysis.sampling,
            analysis.pairing,
            &engine.per_seed(&resampler),
            design.n_units(),
        );
        let summarizer = Summarizer {
            method: analysis.interval,
            confidence: analysis.confidence,
        };
        Ok(summarizer.p_value(estimate, &deltas, &level, analysis.alternative))
    }
}

/// example count of `power`.
pub fn count_units(table: &ResultsTable, ignore_clusters: bool) -> Result<usize> {
    let distinct = |mut v: Vec<String>| {
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    Ok(match (&table.cluster, ignore_clusters) {
        (Some(c), false) => distinct(c.iter().flatten().map(str::to_string).collect()),
        _ => match &table.example {
            crate::results::ExampleIds::Int(v) => distinct(v.iter().map(i64::to_string).collect()),
            crate::results::ExampleIds::Text(v) => distinct(v.clone()),
        },
    })
}

/// The examples of the drawn units (with repetition) and their new dense cluster ids.
fn expand_units(members: &[Vec<usize>], drawn: &[usize]) -> (Vec<usize>, Vec<u32>) {
    let mut examples = Vec::new();
    let mut clusters = Vec::new();
    for (k, &u) in drawn.iter().enumerate() {
        examples.extend(&members[u]);
        clusters.extend(std::iter::repeat_n(k as u32, members[u].len()));
    }
    (examples, clusters)
}

/// A side restricted to (and repeating) the given examples.
fn restrict(side: Side, examples: &[usize]) -> Side {
    let pick = |v: Option<Vec<f64>>| v.map(|v| examples.iter().map(|&e| v[e]).collect());
    Side {
        seeds: side
            .seeds
            .into_iter()
            .map(|seed| Seed {
                id: seed.id,
                runs: seed
                    .runs
                    .into_iter()
                    .map(|r| Outcomes {
                        label: pick(r.label),
                        prediction: pick(r.prediction),
                        score: pick(r.score),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Seeds drawn twice become distinct seeds (ids by position), as a resampled study would see them.
fn relabel(mut side: Side) -> Side {
    side.seeds.iter_mut().enumerate().for_each(|(i, s)| s.id = i as i64);
    side
}
