//! `mb-stats bootstrap`: one Multi-Bootstrap summary per cell and group (or comparison), with
//! p-values adjusted across cells, and the per-seed estimates of a report.

use super::design::{Cell, Parts, Prepared, pair_seeds};
use super::{Method, Options};
use crate::results::ResultsTable;
use crate::results::filter::Key;
use mb_stats_core::adjust::{benjamini_hochberg, holm};
use mb_stats_core::design::{Design, DesignError, Pairing, Side};
use mb_stats_core::engine::{Engine, Estimates, Replicates, Residual, SeedEstimates};
use mb_stats_core::interval::{SeedLevel, Summarizer, join_note, note_undefined};
use mb_stats_core::resample::{Resampler, Sampling};
use mb_stats_core::summary::{Interval, prob_abs_effect, prob_rel_effect};
use mb_stats_files::error::{Error, Result, input};

/// Which quantity a summary row describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// The baseline procedure L of a comparison.
    Base,
    /// The treatment procedure L′ of a comparison.
    Treatment,
    /// δ = L′ − L.
    Delta,
    /// θ of one procedure (no comparison).
    Estimate,
}

impl Quantity {
    /// The spelling used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Base => "base",
            Quantity::Treatment => "treatment",
            Quantity::Delta => "delta",
            Quantity::Estimate => "estimate",
        }
    }
}

/// One summary row: one quantity of one analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The cell of `--by` (`task=…,layer=…`, or `all`).
    pub cell: String,
    /// The group (or groups joined by `+`; `T - B` for a delta).
    pub group: String,
    /// Task of the cell (or the single task analysed).
    pub task: Option<String>,
    /// Layer of the cell (or the single layer analysed).
    pub layer: Option<String>,
    /// Step of the cell (or the single step analysed).
    pub step: Option<String>,
    /// The quantity.
    pub quantity: Quantity,
    /// Point estimate, bootstrap mean and percentile interval.
    pub interval: Interval,
    /// Bootstrap p-value (delta rows only).
    pub p_value: Option<f64>,
    /// Holm-adjusted p-value across cells (delta rows only).
    pub p_holm: Option<f64>,
    /// Benjamini–Hochberg-adjusted p-value across cells (delta rows only).
    pub p_bh: Option<f64>,
    /// Seeds analysed (a delta: the common seeds when paired, both sides' seeds when unpaired).
    pub n_seeds: usize,
    /// Runs analysed.
    pub n_runs: usize,
    /// Examples analysed.
    pub n_examples: usize,
    /// Clusters resampled, when the table has a `cluster` column.
    pub n_clusters: Option<usize>,
    /// P(δ ≥ threshold_abs) (delta rows only).
    pub prob_abs: Option<f64>,
    /// P(δ / L ≥ threshold_rel) (delta rows only).
    pub prob_rel: Option<f64>,
    /// What the analysis dropped or assumed (seeds on one side only when paired).
    pub note: String,
}

/// Every replicate of one analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct CellReplicates {
    /// The cell (`task=…,layer=…`, or `all`).
    pub cell: String,
    /// The group (or comparison) analysed.
    pub group: String,
    /// The replicate values.
    pub replicates: Replicates,
    /// Every seed's own estimate (for the seed level of calibrated intervals).
    pub seed_estimates: SeedEstimates,
    /// Resampled example units (examples or clusters) of the design.
    pub n_units: usize,
}

/// The result of `mb-stats bootstrap`.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Shared settings.
    pub method: Method,
    /// Summary rows, cell by cell.
    pub rows: Vec<Row>,
    /// Replicates of every analysis, in row order.
    pub replicates: Vec<CellReplicates>,
}

/// Runs the Multi-Bootstrap on every cell of `table`.
pub fn bootstrap(table: &ResultsTable, options: &Options) -> Result<Report> {
    let prepared = Prepared::new(table, options)?;
    let mut out = Outputs::default();
    for (cell, cell_rows) in prepared.cells() {
        match &options.comparison {
            Some(_) => {
                let (b, t) = prepared.sides(cell, cell_rows)?;
                analyse(&prepared, options, cell, &b, Some(&t), &mut out)?;
            }
            None => {
                for group_rows in prepared.by_group(cell_rows) {
                    analyse(&prepared, options, cell, &group_rows, None, &mut out)?;
                }
            }
        }
    }
    adjust_p_values(&mut out.rows);
    Ok(Report {
        method: prepared.method(),
        rows: out.rows,
        replicates: out.replicates,
    })
}

/// The rows and replicates of the analyses so far.
#[derive(Default)]
struct Outputs {
    rows: Vec<Row>,
    replicates: Vec<CellReplicates>,
}

/// One analysis: a group (`treatment_rows` = None) or a comparison, appended to the outputs.
fn analyse(
    prepared: &Prepared,
    options: &Options,
    cell: &Cell,
    base_rows: &[usize],
    treatment_rows: Option<&[usize]>,
    out: &mut Outputs,
) -> Result<()> {
    let base_name = prepared.group_names(base_rows);
    let where_ = |side: &str| match treatment_rows {
        None => format!("group {base_name} (cell {})", cell.label()),
        Some(_) => format!("the {side} side (cell {})", cell.label()),
    };
    let parts = prepared.parts(base_rows, treatment_rows, &where_)?;
    let (n_examples, n_clusters) = (parts.n, parts.clusters.as_ref().map(|_| parts.n_units()));
    let (design, note) = build_design(parts, options.pairing, cell)?;
    let design = design.map_err(|e| input(format!("{}: {e}", where_("base"))))?;
    let fit = Fit::new(&design, options).map_err(|e| input(format!("{}: {e}", where_("base"))))?;
    let all_rows: Vec<usize> = base_rows.iter().chain(treatment_rows.unwrap_or(&[])).copied().collect();
    let shared = Shared {
        cell: cell.label().to_string(),
        task: prepared.shared_value(cell, &all_rows, Key::Task),
        layer: prepared.shared_value(cell, &all_rows, Key::Layer),
        step: prepared.shared_value(cell, &all_rows, Key::Step),
        n_examples,
        n_clusters,
        note,
    };
    let summary = Summary {
        options,
        design: &design,
        summarizer: Summarizer {
            method: options.interval,
            confidence: options.confidence,
        },
        shared,
    };
    match treatment_rows.filter(|_| design.treatment().is_some()) {
        Some(t_rows) => summary.comparison(fit, &base_name, &prepared.group_names(t_rows), out),
        None => summary.estimate(fit, base_name, out),
    }
    Ok(())
}

/// The design of one analysis from its parts (seeds paired when asked), and the note of the
/// seeds pairing dropped. The outer error is the analysis's own; the inner one the design's.
fn build_design(
    parts: Parts,
    pairing: Pairing,
    cell: &Cell,
) -> Result<(std::result::Result<Design, DesignError>, String)> {
    let Parts {
        base,
        treatment,
        clusters,
        ..
    } = parts;
    let Some(treatment) = treatment else {
        return Ok((Design::single(base, clusters), String::new()));
    };
    let (base, treatment, note) = match pairing {
        Pairing::Paired => {
            let (b, t, dropped) = pair_seeds(base, treatment);
            if b.seeds.is_empty() {
                return Err(Error::named(format!(
                    "{{paired}}: the base and treatment sides share no seed in cell {}",
                    cell.label()
                )));
            }
            (b, t, dropped)
        }
        Pairing::Unpaired => (base, treatment, String::new()),
    };
    Ok((Design::compare(base, treatment, pairing, clusters), note))
}

/// A design's full-data estimates, bootstrap replicates and every seed's estimate.
struct Fit {
    point: Estimates,
    reps: Replicates,
    seed_estimates: SeedEstimates,
}

impl Fit {
    /// Runs the engine on `design`, drawing with the options' RNG seed.
    fn new(design: &Design, options: &Options) -> std::result::Result<Self, String> {
        let engine = Engine::new(design, options.metric)?;
        let resampler = Resampler::new(design, options.sampling, options.rng_seed);
        let point = engine.evaluate(&resampler.full());
        let reps = engine.bootstrap(&resampler, options.nboot.get());
        super::interrupted()?;
        let seed_estimates = engine.per_seed(&resampler);
        Ok(Self {
            point,
            reps,
            seed_estimates,
        })
    }
}

/// What every row of one analysis shares.
struct Shared {
    cell: String,
    task: Option<String>,
    layer: Option<String>,
    step: Option<String>,
    n_examples: usize,
    n_clusters: Option<usize>,
    note: String,
}

impl Shared {
    /// A row of `group` and `quantity` (its seeds and runs from `side`), without p-values.
    fn row(&self, group: String, quantity: Quantity, interval: Interval, side: Option<&Side>) -> Row {
        Row {
            cell: self.cell.clone(),
            group,
            task: self.task.clone(),
            layer: self.layer.clone(),
            step: self.step.clone(),
            quantity,
            interval,
            p_value: None,
            p_holm: None,
            p_bh: None,
            n_seeds: side.map_or(0, |s| s.seeds.len()),
            n_runs: side.map_or(0, Side::n_runs),
            n_examples: self.n_examples,
            n_clusters: self.n_clusters,
            prob_abs: None,
            prob_rel: None,
            note: self.note.clone(),
        }
    }
}

/// Turns a fitted design into summary rows.
struct Summary<'a> {
    options: &'a Options,
    design: &'a Design,
    summarizer: Summarizer,
    shared: Shared,
}

impl Summary<'_> {
    /// The row of one side's θ, its interval at the side's seed level and its few-seeds note.
    fn side_row(&self, name: String, quantity: Quantity, side: &Side, estimates: SideEstimates) -> Row {
        let sampling = self.options.sampling;
        let level = SeedLevel::side(sampling, estimates.seeds, estimates.residual, self.design.n_units());
        let interval = self
            .summarizer
            .interval(estimates.point, estimates.replicates, &level)
            .within(self.options.metric.range());
        let mut row = self.shared.row(name, quantity, interval, Some(side));
        row.note = self.summarizer.guard(&[side.seeds.len()], sampling, &row.note);
        row.note = note_undefined(&row.interval, &row.note);
        row
    }

    /// The estimate row of a group.
    fn estimate(self, fit: Fit, name: String, out: &mut Outputs) {
        let Fit {
            point,
            reps,
            seed_estimates,
        } = fit;
        let residual = seed_estimates.interaction.and_then(|i| i.base);
        let base = SideEstimates {
            point: point.base,
            replicates: &reps.base,
            seeds: &seed_estimates.base,
            residual,
        };
        out.rows
            .push(self.side_row(name.clone(), Quantity::Estimate, self.design.base(), base));
        out.replicates.push(CellReplicates {
            cell: self.shared.cell,
            group: name,
            replicates: reps,
            seed_estimates,
            n_units: self.design.n_units(),
        });
    }

    /// The base, treatment and delta rows of a comparison.
    fn comparison(self, fit: Fit, base_name: &str, t_name: &str, out: &mut Outputs) {
        let Fit {
            point,
            reps,
            seed_estimates,
        } = fit;
        let (b_side, t_side) = (self.design.base(), self.design.treatment().expect("a comparison"));
        let interaction = seed_estimates.interaction;
        let t_point = point.treatment.expect("a comparison");
        let t_reps = reps.treatment.as_deref().expect("a comparison");
        let base = SideEstimates {
            point: point.base,
            replicates: &reps.base,
            seeds: &seed_estimates.base,
            residual: interaction.and_then(|i| i.base),
        };
        out.rows
            .push(self.side_row(base_name.to_string(), Quantity::Base, b_side, base));
        let treatment = SideEstimates {
            point: t_point,
            replicates: t_reps,
            seeds: seed_estimates.treatment.as_deref().expect("a comparison"),
            residual: interaction.and_then(|i| i.treatment),
        };
        out.rows
            .push(self.side_row(t_name.to_string(), Quantity::Treatment, t_side, treatment));
        let deltas: Vec<f64> = t_reps.iter().zip(&reps.base).map(|(t, b)| t - b).collect();
        out.rows.push(self.delta_row(
            format!("{t_name} - {base_name}"),
            t_point - point.base,
            &deltas,
            &reps.base,
            &seed_estimates,
        ));
        out.replicates.push(CellReplicates {
            cell: self.shared.cell,
            group: format!("{t_name} - {base_name}"),
            replicates: reps,
            seed_estimates,
            n_units: self.design.n_units(),
        });
    }

    /// The delta row: δ's interval, p-value and effect probabilities.
    fn delta_row(
        &self,
        group: String,
        estimate: f64,
        deltas: &[f64],
        base_reps: &[f64],
        seed_estimates: &SeedEstimates,
    ) -> Row {
        let (design, options, summarizer) = (self.design, self.options, &self.summarizer);
        let (b_side, t_side) = (design.base(), design.treatment().expect("a comparison"));
        let sampling = options.sampling;
        let level = SeedLevel::delta(sampling, design.pairing(), seed_estimates, design.n_units());
        let mut delta = self.shared.row(
            group,
            Quantity::Delta,
            summarizer
                .interval(estimate, deltas, &level)
                .within(options.metric.delta_range()),
            None,
        );
        let alternative = options.alternative;
        let side_seeds = match design.pairing() {
            Pairing::Paired => vec![b_side.seeds.len()],
            Pairing::Unpaired => vec![b_side.seeds.len(), t_side.seeds.len()],
        };
        delta.n_seeds = side_seeds.iter().sum();
        delta.note = summarizer.guard(&side_seeds, sampling, &delta.note);
        if side_seeds.len() == 2 && side_seeds.contains(&1) && side_seeds.iter().any(|&s| s > 1) {
            delta.note = join_note(&delta.note, ONE_SEED_BASELINE);
        }
        delta.note = note_undefined(&delta.interval, &delta.note);
        delta.n_runs = b_side.n_runs() + t_side.n_runs();
        // No interval, no test: a p-value of replicates stuck at a bound would claim certainty.
        delta.p_value = Some(match delta.interval.low.is_nan() {
            true => f64::NAN,
            false => summarizer.p_value(estimate, deltas, &level, alternative),
        });
        delta.prob_abs = options.threshold_abs.map(|x| prob_abs_effect(deltas, x, alternative));
        delta.prob_rel = options
            .threshold_rel
            .map(|x| prob_rel_effect(deltas, base_reps, x, alternative));
        delta
    }
}

/// One side's full-data estimate, replicates, seed estimates and seed × unit residual.
struct SideEstimates<'a> {
    point: f64,
    replicates: &'a [f64],
    seeds: &'a [f64],
    residual: Option<Residual>,
}

/// One seed's estimate with an examples-only interval: what a study of that single checkpoint
/// would have concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedRow {
    /// The cell (`task=…,layer=…`, or `all`).
    pub cell: String,
    /// The group.
    pub group: String,
    /// The pretraining seed.
    pub seed: i64,
    /// Runs averaged for this seed.
    pub n_runs: usize,
    /// Point estimate and examples-only interval.
    pub interval: Interval,
}

/// Per cell and group, every seed's estimate with an examples-only interval (its runs
/// averaged; examples or clusters resampled, with the same RNG seed as the procedure-level
/// analysis). With a comparison, only the groups of its two sides appear.
pub fn per_seed(table: &ResultsTable, options: &Options) -> Result<Vec<SeedRow>> {
    let prepared = Prepared::new(table, options)?;
    let mut out = Vec::new();
    let compared: Option<Vec<bool>> = options.comparison.as_ref().map(|(b, t)| {
        let (b, t) = (b.mask(table), t.mask(table));
        b.iter().zip(t).map(|(b, t)| *b || t).collect()
    });
    for (cell, cell_rows) in prepared.cells() {
        let rows: Vec<usize> = match &compared {
            Some(compared) => cell_rows.iter().copied().filter(|&r| compared[r]).collect(),
            None => cell_rows.clone(),
        };
        for group_rows in prepared.by_group(&rows) {
            let name = table.group[group_rows[0]].to_string();
            let where_ = |_: &str| format!("group {name} (cell {})", cell.label());
            let Parts { base, clusters, .. } = prepared.parts(&group_rows, None, &where_)?;
            for seed in base.seeds {
                let (id, n_runs) = (seed.id, seed.runs.len());
                let fail = |e: String| input(format!("{}: {e}", where_("")));
                let design = Design::single(Side { seeds: vec![seed] }, clusters.clone()).map_err(|e| fail(e.0))?;
                let engine = Engine::new(&design, options.metric).map_err(fail)?;
                let resampler = Resampler::new(&design, Sampling::Examples, options.rng_seed);
                let point = engine.evaluate(&resampler.full()).base;
                let reps = engine.bootstrap(&resampler, options.nboot.get());
                super::interrupted().map_err(fail)?;
                let summarizer = Summarizer {
                    method: options.interval,
                    confidence: options.confidence,
                };
                let level = SeedLevel::drawn(Sampling::Examples, &[], design.n_units());
                let interval = summarizer
                    .interval(point, &reps.base, &level)
                    .within(options.metric.range());
                out.push(SeedRow {
                    cell: cell.label().to_string(),
                    group: name.clone(),
                    seed: id,
                    n_runs,
                    interval,
                });
            }
        }
    }
    Ok(out)
}

/// What a delta against a one-seed side estimates.
const ONE_SEED_BASELINE: &str = "one-seed baseline: delta compares the procedure with that one checkpoint \
(its seed is fixed, not a draw from a procedure)";

/// Fills Holm and BH adjusted p-values across the delta rows of all cells (a delta whose
/// p-value is NaN, because it has no interval, is no test and joins no family).
fn adjust_p_values(rows: &mut [Row]) {
    let tested: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].p_value.is_some_and(|p| !p.is_nan()))
        .collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| rows[i].p_value).collect();
    for ((&i, h), b) in tested.iter().zip(holm(&p)).zip(benjamini_hochberg(&p)) {
        rows[i].p_holm = Some(h);
        rows[i].p_bh = Some(b);
    }
}
