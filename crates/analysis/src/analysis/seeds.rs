//! `mb-stats seeds`: artifact or procedure? Each seed's own conclusion (examples-only interval
//! and p-value, what a study of that one checkpoint would have said) beside the procedure-level
//! Multi-Bootstrap, how many seeds agree with it, and a test of "no seed effect" per arm. With
//! `--paired`, seed s of the treatment is compared with seed s of the baseline; unpaired, each
//! treatment seed is compared with the whole baseline procedure (e.g. each MultiBERTs seed
//! against the original BERT).

use super::design::{Cell, Parts, Prepared, pair_seeds};
use super::{Method, Options, Row, bootstrap};
use crate::results::ResultsTable;
use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
use mb_stats_core::engine::Engine;
use mb_stats_core::heterogeneity::{TestResult, permutation_test, spread_test};
use mb_stats_core::interval::{SeedLevel, Summarizer};
use mb_stats_core::resample::{Resampler, Sampling};
use mb_stats_core::summary::Interval;
use mb_stats_files::error::{Error, Result, input};

/// The settings of `mb-stats seeds`.
#[derive(Clone, Debug)]
pub struct SeedsOptions {
    /// The analysis (metric, comparison, nboot, confidence, alternative, cells, RNG seed).
    pub analysis: Options,
    /// Significance level of the per-seed and procedure conclusions.
    pub alpha: f64,
    /// Permutations of the heterogeneity test.
    pub permutations: usize,
}

/// What a test at level α concludes about δ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conclusion {
    /// Significant, δ > 0.
    Positive,
    /// Significant, δ < 0.
    Negative,
    /// Not significant.
    NotSignificant,
}

impl Conclusion {
    fn of(estimate: f64, p: f64, alpha: f64) -> Self {
        match (p <= alpha, estimate > 0.0) {
            (false, _) => Conclusion::NotSignificant,
            (true, true) => Conclusion::Positive,
            (true, false) => Conclusion::Negative,
        }
    }

    /// The spelling used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Conclusion::Positive => "significant +",
            Conclusion::Negative => "significant -",
            Conclusion::NotSignificant => "not significant",
        }
    }
}

/// One seed alone.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedResult {
    /// Cell of `--by`.
    pub cell: String,
    /// Group, or `treatment - base` for a comparison.
    pub group: String,
    /// Pretraining seed.
    pub seed: i64,
    /// Runs averaged (both sides for a comparison).
    pub n_runs: usize,
    /// θ_s or δ_s with its examples-only interval.
    pub interval: Interval,
    /// Examples-only p-value of δ_s (comparisons).
    pub p_value: Option<f64>,
    /// The seed's conclusion at α (comparisons).
    pub conclusion: Option<Conclusion>,
}

/// How the seeds' conclusions compare with the procedure's in one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// Cell of `--by`.
    pub cell: String,
    /// The procedure's conclusion at α.
    pub procedure: Conclusion,
    /// Seeds with the procedure's conclusion.
    pub agree: Vec<i64>,
    /// Seeds significant in the opposite direction.
    pub opposite: Vec<i64>,
    /// Seeds not significant where the procedure is.
    pub missed: Vec<i64>,
    /// Seeds significant where the procedure is not.
    pub spurious: Vec<i64>,
}

/// The test of "no seed effect" for one arm in one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Heterogeneity {
    /// Cell of `--by`.
    pub cell: String,
    /// The arm (group).
    pub group: String,
    /// `permutation` (runs shuffled across seeds) or `spread` (seed spread vs example sampling).
    pub test: &'static str,
    /// Statistic and p-value.
    pub result: TestResult,
    /// Seeds in the arm.
    pub n_seeds: usize,
    /// Runs in the arm.
    pub n_runs: usize,
}

/// Everything `mb-stats seeds` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedsReport {
    /// The procedure-level analysis settings.
    pub method: Method,
    /// Significance level.
    pub alpha: f64,
    /// Permutations of the heterogeneity tests.
    pub permutations: usize,
    /// The procedure-level rows (as `mb-stats bootstrap`).
    pub procedure: Vec<Row>,
    /// Every seed alone.
    pub seeds: Vec<SeedResult>,
    /// Agreement per cell (comparisons).
    pub agreement: Vec<Agreement>,
    /// Heterogeneity per cell and arm.
    pub heterogeneity: Vec<Heterogeneity>,
}

/// The most permutations of the no-seed-effect test.
pub const MAX_PERMUTATIONS: usize = 10_000_000;

/// Runs `mb-stats seeds` on every cell of `table`.
pub fn seeds(table: &ResultsTable, options: &SeedsOptions) -> Result<SeedsReport> {
    check_options(options)?;
    let analysis = &options.analysis;
    let procedure = bootstrap(table, analysis)?;
    let prepared = Prepared::new(table, analysis)?;
    let mut found = Found::default();
    for (cell, cell_rows) in prepared.cells() {
        match &analysis.comparison {
            Some(_) => compare_seeds(&prepared, table, cell, cell_rows, &procedure.rows, options, &mut found)?,
            None => group_seeds(&prepared, table, cell, cell_rows, options, &mut found)?,
        }
    }
    Ok(SeedsReport {
        method: procedure.method.clone(),
        alpha: options.alpha,
        permutations: options.permutations,
        procedure: procedure.rows,
        seeds: found.seeds,
        agreement: found.agreement,
        heterogeneity: found.heterogeneity,
    })
}

/// Checks the settings of `mb-stats seeds` that the analysis options do not cover.
fn check_options(options: &SeedsOptions) -> Result<()> {
    if !(options.alpha > 0.0 && options.alpha < 1.0) {
        return Err(Error::named(format!(
            "{{alpha}} must be strictly between 0 and 1, got {}",
            options.alpha
        )));
    }
    if options.permutations == 0 {
        return Err(Error::named("{permutations} must be at least 1"));
    }
    if options.permutations > MAX_PERMUTATIONS {
        return Err(Error::named(format!(
            "{{permutations}} {}: at most {MAX_PERMUTATIONS} (each one recomputes every seed's runs)",
            options.permutations
        )));
    }
    Ok(())
}

/// The per-seed results of the cells so far.
#[derive(Default)]
struct Found {
    seeds: Vec<SeedResult>,
    agreement: Vec<Agreement>,
    heterogeneity: Vec<Heterogeneity>,
}

/// A comparison's cell: each arm's heterogeneity test, every seed's δ_s and how the seeds'
/// conclusions agree with the procedure's (its delta row among `procedure`).
fn compare_seeds(
    prepared: &Prepared,
    table: &ResultsTable,
    cell: &Cell,
    cell_rows: &[usize],
    procedure: &[Row],
    options: &SeedsOptions,
    found: &mut Found,
) -> Result<()> {
    let analysis = &options.analysis;
    let label = cell.label();
    let fail = |e: String| input(format!("cell {label}: {e}"));
    let (b, t) = prepared.sides(cell, cell_rows)?;
    let where_ = |side: &str| format!("the {side} side (cell {label})");
    let Parts {
        base,
        treatment,
        clusters,
        ..
    } = prepared.parts(&b, Some(&t), &where_)?;
    let treatment = treatment.expect("a comparison has a treatment side");
    let name = |rows: &[usize]| table.group[rows[0]].to_string();
    for (group, side) in [(name(&b), &base), (name(&t), &treatment)] {
        found
            .heterogeneity
            .push(arm_test(label, group, side, clusters.as_ref(), options).map_err(fail)?);
    }
    let group = procedure.iter().find(|r| r.cell == label && r.p_value.is_some());
    let delta_row = group.ok_or_else(|| fail("no procedure-level delta".into()))?;
    let mut cell_agreement = Agreement {
        cell: label.to_string(),
        procedure: Conclusion::of(
            delta_row.interval.estimate,
            delta_row.p_value.unwrap_or(1.0),
            options.alpha,
        ),
        agree: Vec::new(),
        opposite: Vec::new(),
        missed: Vec::new(),
        spurious: Vec::new(),
    };
    for (id, study_base, study_treatment) in studies(base, treatment, analysis.pairing) {
        let n_runs = study_base.n_runs() + study_treatment.n_runs();
        let design =
            Design::compare(study_base, study_treatment, analysis.pairing, clusters.clone()).map_err(|e| fail(e.0))?;
        let (interval, p) = seed_delta(&design, analysis).map_err(fail)?;
        let conclusion = Conclusion::of(interval.estimate, p, options.alpha);
        cell_agreement.count(id, conclusion);
        found.seeds.push(SeedResult {
            cell: label.to_string(),
            group: delta_row.group.clone(),
            seed: id,
            n_runs,
            interval,
            p_value: Some(p),
            conclusion: Some(conclusion),
        });
    }
    found.agreement.push(cell_agreement);
    Ok(())
}

/// The single-seed studies of a comparison, with the seed each is named after. Paired: seed s
/// of each side. Unpaired: each treatment seed against the whole baseline procedure (its seeds
/// fixed), as a study of that one checkpoint would compare it with the baseline.
fn studies(base: Side, treatment: Side, pairing: Pairing) -> Vec<(i64, Side, Side)> {
    match pairing {
        Pairing::Paired => {
            let (b, t, _) = pair_seeds(base, treatment);
            b.seeds
                .into_iter()
                .zip(t.seeds)
                .map(|(bs, ts)| (bs.id, Side { seeds: vec![bs] }, Side { seeds: vec![ts] }))
                .collect()
        }
        Pairing::Unpaired => treatment
            .seeds
            .into_iter()
            .map(|ts| (ts.id, base.clone(), Side { seeds: vec![ts] }))
            .collect(),
    }
}

/// δ of a single-seed study with its examples-only interval and p-value.
fn seed_delta(design: &Design, analysis: &Options) -> std::result::Result<(Interval, f64), String> {
    let engine = Engine::new(design, analysis.metric)?;
    let resampler = Resampler::new(design, Sampling::Examples, analysis.rng_seed);
    let point = engine.evaluate(&resampler.full());
    let reps = engine.bootstrap(&resampler, analysis.nboot.get());
    super::interrupted()?;
    let deltas: Vec<f64> = reps
        .treatment
        .iter()
        .flatten()
        .zip(&reps.base)
        .map(|(t, b)| t - b)
        .collect();
    let estimate = point.treatment.unwrap_or(f64::NAN) - point.base;
    let summarizer = Summarizer {
        method: analysis.interval,
        confidence: analysis.confidence,
    };
    let level = SeedLevel::drawn(Sampling::Examples, &[], design.n_units());
    let p = summarizer.p_value(estimate, &deltas, &level, analysis.alternative);
    let interval = summarizer
        .interval(estimate, &deltas, &level)
        .within(analysis.metric.delta_range());
    Ok((interval, if interval.low.is_nan() { f64::NAN } else { p }))
}

impl Agreement {
    /// Files seed `id` by how its conclusion compares with the procedure's.
    fn count(&mut self, id: i64, conclusion: Conclusion) {
        let bucket = match (self.procedure, conclusion) {
            (c, s) if c == s => &mut self.agree,
            (Conclusion::NotSignificant, _) => &mut self.spurious,
            (_, Conclusion::NotSignificant) => &mut self.missed,
            _ => &mut self.opposite,
        };
        bucket.push(id);
    }
}

/// A cell without comparison: every seed's θ_s of each group and each group's heterogeneity test.
fn group_seeds(
    prepared: &Prepared,
    table: &ResultsTable,
    cell: &Cell,
    cell_rows: &[usize],
    options: &SeedsOptions,
    found: &mut Found,
) -> Result<()> {
    let analysis = &options.analysis;
    let label = cell.label();
    let fail = |e: String| input(format!("cell {label}: {e}"));
    let summarizer = Summarizer {
        method: analysis.interval,
        confidence: analysis.confidence,
    };
    for rows in prepared.by_group(cell_rows) {
        let group = table.group[rows[0]].to_string();
        let where_ = |_: &str| format!("group {group} (cell {label})");
        let parts = prepared.parts(&rows, None, &where_)?;
        let level = SeedLevel::drawn(Sampling::Examples, &[], parts.n_units());
        let (base, clusters) = (&parts.base, parts.clusters.as_ref());
        for (seed, (point, reps)) in base
            .seeds
            .iter()
            .zip(seed_replicates(base, clusters, analysis).map_err(fail)?)
        {
            found.seeds.push(SeedResult {
                cell: label.to_string(),
                group: group.clone(),
                seed: seed.id,
                n_runs: seed.runs.len(),
                interval: summarizer
                    .interval(point, &reps, &level)
                    .within(analysis.metric.range()),
                p_value: None,
                conclusion: None,
            });
        }
        found
            .heterogeneity
            .push(arm_test(label, group, base, clusters, options).map_err(fail)?);
    }
    Ok(())
}

/// Each seed's full-data estimate and examples-only replicates. Every seed's design has the
/// same shape, so replicate b draws the same examples for every seed.
fn seed_replicates(
    side: &Side,
    clusters: Option<&Vec<u32>>,
    analysis: &Options,
) -> std::result::Result<Vec<(f64, Vec<f64>)>, String> {
    side.seeds
        .iter()
        .map(|seed| {
            let design = Design::single(
                Side {
                    seeds: vec![seed.clone()],
                },
                clusters.cloned(),
            )
            .map_err(|e| e.0)?;
            let engine = Engine::new(&design, analysis.metric)?;
            let resampler = Resampler::new(&design, Sampling::Examples, analysis.rng_seed);
            let replicates = engine.bootstrap(&resampler, analysis.nboot.get()).base;
            super::interrupted()?;
            Ok((engine.evaluate(&resampler.full()).base, replicates))
        })
        .collect()
}

/// The heterogeneity test of one arm: permutation of runs when some seed has several runs,
/// otherwise the spread of seed estimates against example sampling.
pub(super) fn arm_test(
    cell: &str,
    group: String,
    side: &Side,
    clusters: Option<&Vec<u32>>,
    options: &SeedsOptions,
) -> std::result::Result<Heterogeneity, String> {
    let analysis = &options.analysis;
    let n_runs = side.n_runs();
    let (test, result) = if n_runs > side.seeds.len() {
        let mut values = Vec::with_capacity(n_runs);
        let mut seed_of_run = Vec::with_capacity(n_runs);
        for (s, seed) in side.seeds.iter().enumerate() {
            for run in &seed.runs {
                values.push(run_value(seed.id, run, clusters, analysis)?);
                seed_of_run.push(s);
            }
        }
        (
            "permutation",
            permutation_test(&values, &seed_of_run, options.permutations, analysis.rng_seed),
        )
    } else {
        let (estimates, replicates): (Vec<f64>, Vec<Vec<f64>>) =
            seed_replicates(side, clusters, analysis)?.into_iter().unzip();
        ("spread", spread_test(&estimates, &replicates))
    };
    Ok(Heterogeneity {
        cell: cell.to_string(),
        group,
        test,
        result,
        n_seeds: side.seeds.len(),
        n_runs,
    })
}

/// One run's metric on the full data.
fn run_value(
    id: i64,
    run: &Outcomes,
    clusters: Option<&Vec<u32>>,
    analysis: &Options,
) -> std::result::Result<f64, String> {
    let design = Design::single(
        Side {
            seeds: vec![Seed {
                id,
                runs: vec![run.clone()],
            }],
        },
        clusters.cloned(),
    )
    .map_err(|e| e.0)?;
    let engine = Engine::new(&design, analysis.metric)?;
    Ok(engine
        .evaluate(&Resampler::new(&design, Sampling::Examples, 0).full())
        .base)
}
