//! From a results table to Multi-Bootstrap summaries: split the table into cells (`--by`),
//! build one validated [`Design`] per analysis (a group, or a base/treatment comparison), run
//! the engine and summarise. This is the only place that knows both the table and the
//! statistics; the statistics themselves see plain arrays.

mod curve;
mod power;
mod seeds;
mod variance;

pub use curve::{CurveOptions, CurvePoint, CurveReport, CurveSeries, StepDelta, curve};
pub use power::{PowerOptions, PowerReport, PowerRow, count_units, power};
pub use seeds::{Agreement, Conclusion, Heterogeneity, SeedResult, SeedsOptions, SeedsReport, seeds};
pub use variance::{VarianceReport, VarianceRow, variance};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use crate::results::filter::{Filter, Key};
use crate::results::{ExampleIds, ResultsTable};
use mb_stats_core::adjust::{benjamini_hochberg, holm};
use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
use mb_stats_core::engine::{Engine, Replicates, SeedEstimates};
use mb_stats_core::interval::{IntervalMethod, SeedLevel, Summarizer};
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::{Resampler, Sampling};
use mb_stats_core::summary::{Alternative, Interval, prob_abs_effect, prob_rel_effect};
use mb_stats_files::error::{Result, input};

/// What `mb-stats bootstrap` computes.
#[derive(Clone, Debug)]
pub struct Options {
    /// The metric of each run.
    pub metric: Metric,
    /// Base and treatment filters of a comparison; `None` gives one estimate per group.
    pub comparison: Option<(Filter, Filter)>,
    /// Paired or unpaired seed draws for a comparison.
    pub pairing: Pairing,
    /// What the replicates resample.
    pub sampling: Sampling,
    /// Number of bootstrap replicates.
    pub nboot: usize,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// How replicates become intervals and p-values.
    pub interval: IntervalMethod,
    /// Alternative hypothesis of the p-value.
    pub alternative: Alternative,
    /// Columns (task, layer, step) whose values split the table into cells.
    pub by: Vec<Key>,
    /// Resample examples even when the table has a `cluster` column.
    pub ignore_clusters: bool,
    /// Seed of the random draws.
    pub rng_seed: u64,
    /// Report P(δ ≥ x) for this x.
    pub threshold_abs: Option<f64>,
    /// Report P(δ / L ≥ x) for this x.
    pub threshold_rel: Option<f64>,
}

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

/// The settings every row shares, printed with every result.
#[derive(Clone, Debug, PartialEq)]
pub struct Method {
    /// Metric.
    pub metric: Metric,
    /// Replicates.
    pub nboot: usize,
    /// Confidence level.
    pub confidence: f64,
    /// Interval method.
    pub interval: IntervalMethod,
    /// What was resampled.
    pub sampling: Sampling,
    /// Pairing of a comparison (`None` without comparison).
    pub pairing: Option<Pairing>,
    /// Alternative of the p-values (`None` without comparison).
    pub alternative: Option<Alternative>,
    /// Seed of the random draws.
    pub rng_seed: u64,
    /// Whether examples were resampled by cluster.
    pub clustered: bool,
    /// Threshold of `prob_abs`.
    pub threshold_abs: Option<f64>,
    /// Threshold of `prob_rel`.
    pub threshold_rel: Option<f64>,
}

impl Method {
    /// The unit of example resampling: `clusters` or `examples`.
    pub fn unit(&self) -> &'static str {
        if self.clustered { "clusters" } else { "examples" }
    }
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

/// A cell value of `--by`: integers, or task names as their sorted codes (nulls first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CellValue {
    Null,
    Int(i64),
    Task(u32),
}

impl CellValue {
    fn of(table: &ResultsTable, tasks: &Codes, key: Key, row: usize) -> Self {
        let int =
            |c: &Option<Vec<Option<i64>>>| c.as_ref().and_then(|v| v[row]).map_or(CellValue::Null, CellValue::Int);
        match key {
            Key::Task => match tasks.codes[row] {
                NULL_CODE => CellValue::Null,
                code => CellValue::Task(code),
            },
            Key::Layer => int(&table.layer),
            _ => int(&table.step),
        }
    }

    fn text(self, tasks: &Codes) -> Option<String> {
        match self {
            CellValue::Null => None,
            CellValue::Int(v) => Some(v.to_string()),
            CellValue::Task(code) => Some(tasks.names[code as usize].clone()),
        }
    }
}

/// A null step means "final or unknown" (DESIGN): the checkpoint of an arm without steps, such
/// as a one-seed original BERT beside a suite's intermediate checkpoints. Split by step, its rows
/// join every step's cell (same other `--by` values), so it is compared at every step; they keep
/// a cell of their own only when no cell of theirs has a step.
fn join_stepless_rows(cells: &mut BTreeMap<Vec<CellValue>, Vec<usize>>, at: usize) {
    let stepless: Vec<Vec<CellValue>> = cells.keys().filter(|k| k[at] == CellValue::Null).cloned().collect();
    for key in stepless {
        let same_cell_but_step = |k: &Vec<CellValue>| {
            k[at] != CellValue::Null && k.iter().zip(&key).enumerate().all(|(i, (a, b))| i == at || a == b)
        };
        let stepped: Vec<Vec<CellValue>> = cells.keys().filter(|k| same_cell_but_step(k)).cloned().collect();
        if stepped.is_empty() {
            continue;
        }
        let rows = cells.remove(&key).unwrap_or_default();
        for k in stepped {
            let cell = cells.get_mut(&k).expect("a key of the map");
            cell.extend_from_slice(&rows);
            cell.sort_unstable();
        }
    }
}

/// The table split into cells, with its ids interned once for every analysis.
struct Prepared<'a> {
    context: Context<'a>,
    cells: Vec<(Cell, Vec<usize>)>,
    /// For a comparison, which rows the base and the treatment filters select.
    masks: Vec<Vec<bool>>,
}

impl<'a> Prepared<'a> {
    /// Checks the options against the table, interns ids and splits the rows into cells.
    fn new(table: &'a ResultsTable, options: &'a Options) -> Result<Self> {
        check_options(table, options)?;
        let clusters = match (&table.cluster, options.ignore_clusters) {
            (Some(c), false) => Some(Codes::required_texts(c, "cluster")?),
            _ => None,
        };
        let tasks = match &table.task {
            Some(t) => Codes::sorted(t.len(), |i| t[i].as_ref()),
            None => Codes {
                codes: vec![NULL_CODE; table.len()],
                names: Vec::new(),
            },
        };
        let mut cells: BTreeMap<Vec<CellValue>, Vec<usize>> = BTreeMap::new();
        let mut key = Vec::new();
        if options.by.is_empty() {
            cells.insert(Vec::new(), (0..table.len()).collect());
        }
        for row in (0..table.len()).filter(|_| !options.by.is_empty()) {
            key.clear();
            key.extend(options.by.iter().map(|&k| CellValue::of(table, &tasks, k, row)));
            match cells.get_mut(&key) {
                Some(rows) => rows.push(row),
                None => {
                    cells.insert(key.clone(), vec![row]);
                }
            }
        }
        if let Some(at) = options.by.iter().position(|&k| k == Key::Step) {
            join_stepless_rows(&mut cells, at);
        }
        // Each filter is evaluated once per row.
        let mut masks = Vec::new();
        if let Some((base, treatment)) = &options.comparison {
            for (flag, filter) in [("--base", base), ("--treatment", treatment)] {
                let mask: Vec<bool> = (0..table.len()).map(|r| filter.matches(table, r)).collect();
                if !mask.contains(&true) {
                    return Err(input(format!("{flag} {filter} selects no rows")));
                }
                masks.push(mask);
            }
        }
        let groups = Codes::sorted(table.len(), |i| Some(&table.group[i]));
        let context = Context {
            table,
            options,
            examples: Codes::examples(&table.example),
            groups,
            clusters,
        };
        let cells = cells
            .into_iter()
            .map(|(key, rows)| (Cell::new(options, &tasks, &key), rows))
            .collect();
        Ok(Self { context, cells, masks })
    }

    /// The settings every output of these options records.
    fn method(&self) -> Method {
        let options = self.context.options;
        Method {
            metric: options.metric,
            nboot: options.nboot,
            confidence: options.confidence,
            interval: options.interval,
            sampling: options.sampling,
            pairing: options.comparison.as_ref().map(|_| options.pairing),
            alternative: options.comparison.as_ref().map(|_| options.alternative),
            rng_seed: options.rng_seed,
            clustered: self.context.clusters.is_some(),
            threshold_abs: options.threshold_abs,
            threshold_rel: options.threshold_rel,
        }
    }

    /// The rows of each group in a cell (groups in sorted order).
    fn by_group(&self, cell_rows: &[usize]) -> Vec<Vec<usize>> {
        let groups = &self.context.groups;
        let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); groups.names.len()];
        cell_rows
            .iter()
            .for_each(|&r| by_group[groups.codes[r] as usize].push(r));
        by_group.retain(|g| !g.is_empty());
        by_group
    }

    /// The base and treatment rows of a cell; errors when a filter selects none.
    fn sides(
        &self,
        cell: &Cell,
        cell_rows: &[usize],
        base: &Filter,
        treatment: &Filter,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        let pick = |mask: &[bool]| cell_rows.iter().copied().filter(|&r| mask[r]).collect::<Vec<_>>();
        let (b, t) = (pick(&self.masks[0]), pick(&self.masks[1]));
        for (flag, filter, side) in [("--base", base, &b), ("--treatment", treatment, &t)] {
            if side.is_empty() {
                return Err(input(format!("{flag} {filter} selects no rows in cell {}", cell.label)));
            }
        }
        Ok((b, t))
    }
}

/// Runs the Multi-Bootstrap on every cell of `table`.
pub fn bootstrap(table: &ResultsTable, options: &Options) -> Result<Report> {
    let prepared = Prepared::new(table, options)?;
    let context = &prepared.context;
    let mut rows = Vec::new();
    let mut replicates = Vec::new();
    for (cell, cell_rows) in &prepared.cells {
        match &options.comparison {
            Some((base, treatment)) => {
                let (b, t) = prepared.sides(cell, cell_rows, base, treatment)?;
                context.analyse(cell, &b, Some(&t), &mut rows, &mut replicates)?;
            }
            None => {
                for group_rows in prepared.by_group(cell_rows) {
                    context.analyse(cell, &group_rows, None, &mut rows, &mut replicates)?;
                }
            }
        }
    }
    adjust_p_values(&mut rows);
    Ok(Report {
        method: prepared.method(),
        rows,
        replicates,
    })
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

fn check_options(table: &ResultsTable, options: &Options) -> Result<()> {
    if options.nboot < 2 {
        return Err(input(format!("--nboot must be at least 2, got {}", options.nboot)));
    }
    if options.nboot > MAX_NBOOT {
        return Err(input(format!(
            "--nboot {}: at most {MAX_NBOOT} (the replicate values alone would need {} per cell)",
            options.nboot,
            replicate_memory(options.nboot)
        )));
    }
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(input(format!(
            "--confidence must be strictly between 0 and 1, got {}",
            options.confidence
        )));
    }
    for key in &options.by {
        let present = match key {
            Key::Task => table.task.is_some(),
            Key::Layer => table.layer.is_some(),
            Key::Step => table.step.is_some(),
            _ => {
                return Err(input(format!("--by {}: expected task, layer or step", key.name())));
            }
        };
        if !present {
            return Err(input(format!(
                "--by {}: the results have no {} column",
                key.name(),
                key.name()
            )));
        }
    }
    if options.comparison.is_none() && (options.threshold_abs.is_some() || options.threshold_rel.is_some()) {
        return Err(input(
            "--threshold-abs/--threshold-rel need a comparison (--base and --treatment)",
        ));
    }
    for field in options.metric.fields() {
        let present = match field.name() {
            "label" => table.label.is_some(),
            "prediction" => table.prediction.is_some(),
            _ => table.score.is_some(),
        };
        if !present {
            return Err(input(format!(
                "--metric {} needs column {}, which the results do not have",
                options.metric,
                field.name()
            )));
        }
    }
    Ok(())
}

/// The code of a null value.
const NULL_CODE: u32 = u32::MAX;

/// Dense codes of a column's values, numbered in sorted order (so designs do not depend on the
/// order of rows in the file). Time: O(rows log distinct).
struct Codes {
    codes: Vec<u32>,
    names: Vec<String>,
}

impl Codes {
    fn examples(ids: &ExampleIds) -> Self {
        match ids {
            ExampleIds::Int(v) => Self::integers(v),
            ExampleIds::Text(v) => Self::sorted(v.len(), |i| Some(&v[i])),
        }
    }

    fn required_texts(values: &[Option<String>], column: &str) -> Result<Self> {
        let n = values.len();
        if let Some(i) = values.iter().position(Option::is_none) {
            return Err(input(format!(
                "column {column} has a null in row {i} of {n}; every example needs a {column}"
            )));
        }
        Ok(Self::sorted(n, |i| values[i].as_ref()))
    }

    /// Integer ids through a direct lookup table when they are dense (the usual 0..N), which
    /// is several times faster than sorting; otherwise by sorting.
    fn integers(values: &[i64]) -> Self {
        let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
            return Self {
                codes: Vec::new(),
                names: Vec::new(),
            };
        };
        let span = max.abs_diff(min) as usize;
        if span > 4 * values.len() + 1024 {
            return Self::sorted(values.len(), |i| Some(&values[i]));
        }
        let mut table = vec![NULL_CODE; span + 1];
        values.iter().for_each(|&v| table[(v - min) as usize] = 0);
        let mut names = Vec::new();
        for (offset, slot) in table.iter_mut().enumerate().filter(|(_, s)| **s == 0) {
            *slot = names.len() as u32;
            names.push((min + offset as i64).to_string());
        }
        Self {
            codes: values.iter().map(|&v| table[(v - min) as usize]).collect(),
            names,
        }
    }

    /// Codes of `n` values (`get(i)`, `None` for null) in sorted order of the distinct values.
    /// Rows of one run are usually adjacent, so a row that repeats the previous value skips
    /// the hash lookup.
    fn sorted<'a, T: Ord + Hash + ToString + 'a>(n: usize, get: impl Fn(usize) -> Option<&'a T>) -> Self {
        let mut index: HashMap<&T, u32> = HashMap::new();
        let mut previous: Option<&T> = None;
        for value in (0..n).filter_map(&get) {
            if previous != Some(value) {
                index.entry(value).or_insert(0);
                previous = Some(value);
            }
        }
        let mut distinct: Vec<&T> = index.keys().copied().collect();
        distinct.sort_unstable();
        distinct
            .iter()
            .enumerate()
            .for_each(|(code, v)| *index.get_mut(v).expect("distinct value") = code as u32);
        let mut last: Option<(&T, u32)> = None;
        let codes = (0..n)
            .map(|i| match (get(i), last) {
                (None, _) => NULL_CODE,
                (Some(v), Some((previous, code))) if v == previous => code,
                (Some(v), _) => {
                    let code = index[v];
                    last = Some((v, code));
                    code
                }
            })
            .collect();
        Self {
            codes,
            names: distinct.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// A cell of `--by`: its values and its label.
struct Cell {
    values: Vec<(Key, Option<String>)>,
    label: String,
}

impl Cell {
    fn new(options: &Options, tasks: &Codes, key: &[CellValue]) -> Self {
        let values: Vec<(Key, Option<String>)> = options.by.iter().zip(key).map(|(&k, v)| (k, v.text(tasks))).collect();
        let label = match values.is_empty() {
            true => "all".to_string(),
            false => values
                .iter()
                .map(|(k, v)| format!("{}={}", k.name(), v.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(","),
        };
        Self { values, label }
    }
}

struct Context<'a> {
    table: &'a ResultsTable,
    options: &'a Options,
    examples: Codes,
    groups: Codes,
    clusters: Option<Codes>,
}

const ABSENT: u32 = u32::MAX;

/// The ingredients of a design: sides, clusters and the number of examples.
struct Parts {
    base: Side,
    treatment: Option<Side>,
    clusters: Option<Vec<u32>>,
    n: usize,
}

impl Context<'_> {
    /// One analysis: a group (`treatment` = None) or a comparison, appended to the outputs.
    fn analyse(
        &self,
        cell: &Cell,
        base_rows: &[usize],
        treatment_rows: Option<&[usize]>,
        rows: &mut Vec<Row>,
        replicates: &mut Vec<CellReplicates>,
    ) -> Result<()> {
        let table = self.table;
        let groups = |rows: &[usize]| {
            let mut codes: Vec<u32> = rows.iter().map(|&i| self.groups.codes[i]).collect();
            codes.sort_unstable();
            codes.dedup();
            codes
                .iter()
                .map(|&c| self.groups.names[c as usize].as_str())
                .collect::<Vec<_>>()
                .join("+")
        };
        let base_name = groups(base_rows);
        let all_rows: Vec<usize> = base_rows.iter().chain(treatment_rows.unwrap_or(&[])).copied().collect();
        let where_ = |side: &str| match treatment_rows {
            None => format!("group {base_name} (cell {})", cell.label),
            Some(_) => format!("the {side} side (cell {})", cell.label),
        };
        let Parts {
            base,
            treatment,
            clusters,
            n,
        } = self.parts(base_rows, treatment_rows, &all_rows, &where_)?;
        let n_clusters = clusters.as_ref().map(|c| c.iter().max().map_or(0, |&m| m as usize + 1));
        let mut note = String::new();
        let design = match treatment {
            None => Design::single(base, clusters),
            Some(treatment) => {
                let (base, treatment) = match self.options.pairing {
                    Pairing::Paired => {
                        let (b, t, dropped) = pair_seeds(base, treatment);
                        note = dropped;
                        if b.seeds.is_empty() {
                            return Err(input(format!(
                                "--paired: the base and treatment sides share no seed in cell {}",
                                cell.label
                            )));
                        }
                        (b, t)
                    }
                    Pairing::Unpaired => (base, treatment),
                };
                Design::compare(base, treatment, self.options.pairing, clusters)
            }
        }
        .map_err(|e| input(format!("{}: {e}", where_("base"))))?;
        let engine =
            Engine::new(&design, self.options.metric).map_err(|e| input(format!("{}: {e}", where_("base"))))?;
        let resampler = Resampler::new(&design, self.options.sampling, self.options.rng_seed);
        let point = engine.evaluate(&resampler.full());
        let reps = engine.bootstrap(&resampler, self.options.nboot);
        let seed_estimates = engine.per_seed(&resampler);
        let sampling = self.options.sampling;
        let interaction = seed_estimates.interaction;
        let level = |seeds: &[f64], residual| SeedLevel::side(sampling, seeds, residual, design.n_units());
        let summarizer = Summarizer {
            method: self.options.interval,
            confidence: self.options.confidence,
        };

        let fixed = |key: Key| -> Option<String> {
            if let Some((_, v)) = cell.values.iter().find(|(k, _)| *k == key) {
                return v.clone();
            }
            let first = all_rows[0];
            let present = match key {
                Key::Task => table.task.is_some(),
                Key::Layer => table.layer.is_some(),
                _ => table.step.is_some(),
            };
            (present && all_rows.iter().all(|&r| key.same(table, first, r)))
                .then(|| key.value(table, first))
                .flatten()
        };
        let row = |group: String, quantity, interval, side: Option<&Side>| Row {
            cell: cell.label.clone(),
            group,
            task: fixed(Key::Task),
            layer: fixed(Key::Layer),
            step: fixed(Key::Step),
            quantity,
            interval,
            p_value: None,
            p_holm: None,
            p_bh: None,
            n_seeds: side.map_or(0, |s| s.seeds.len()),
            n_runs: side.map_or(0, Side::n_runs),
            n_examples: n,
            n_clusters,
            prob_abs: None,
            prob_rel: None,
            note: note.clone(),
        };
        let base_level = level(&seed_estimates.base, interaction.and_then(|i| i.base));
        match (
            design.treatment(),
            point.treatment,
            &reps.treatment,
            &seed_estimates.treatment,
        ) {
            (Some(t_side), Some(t_point), Some(t_reps), Some(t_seeds)) => {
                let t_name = groups(treatment_rows.unwrap_or(&[]));
                let b_side = design.base();
                let mut base_row = row(
                    base_name.clone(),
                    Quantity::Base,
                    summarizer.interval(point.base, &reps.base, &base_level),
                    Some(b_side),
                );
                base_row.note = summarizer.guard(&[b_side.seeds.len()], sampling, &base_row.note);
                rows.push(base_row);
                let t_level = level(t_seeds, interaction.and_then(|i| i.treatment));
                let mut t_row = row(
                    t_name.clone(),
                    Quantity::Treatment,
                    summarizer.interval(t_point, t_reps, &t_level),
                    Some(t_side),
                );
                t_row.note = summarizer.guard(&[t_side.seeds.len()], sampling, &t_row.note);
                rows.push(t_row);
                let deltas: Vec<f64> = t_reps.iter().zip(&reps.base).map(|(t, b)| t - b).collect();
                let delta_level = SeedLevel::delta(sampling, design.pairing(), &seed_estimates, design.n_units());
                let estimate = t_point - point.base;
                let mut delta = row(
                    format!("{t_name} - {base_name}"),
                    Quantity::Delta,
                    summarizer.interval(estimate, &deltas, &delta_level),
                    None,
                );
                let alternative = self.options.alternative;
                delta.n_seeds = match design.pairing() {
                    Pairing::Paired => b_side.seeds.len(),
                    Pairing::Unpaired => b_side.seeds.len() + t_side.seeds.len(),
                };
                let side_seeds = match design.pairing() {
                    Pairing::Paired => vec![b_side.seeds.len()],
                    Pairing::Unpaired => vec![b_side.seeds.len(), t_side.seeds.len()],
                };
                delta.note = summarizer.guard(&side_seeds, sampling, &delta.note);
                delta.n_runs = b_side.n_runs() + t_side.n_runs();
                delta.p_value = Some(summarizer.p_value(estimate, &deltas, &delta_level, alternative));
                delta.prob_abs = self
                    .options
                    .threshold_abs
                    .map(|x| prob_abs_effect(&deltas, x, alternative));
                delta.prob_rel = self
                    .options
                    .threshold_rel
                    .map(|x| prob_rel_effect(&deltas, &reps.base, x, alternative));
                rows.push(delta);
                replicates.push(CellReplicates {
                    cell: cell.label.clone(),
                    group: format!("{t_name} - {base_name}"),
                    replicates: reps,
                    seed_estimates,
                    n_units: design.n_units(),
                });
            }
            _ => {
                let mut estimate_row = row(
                    base_name.clone(),
                    Quantity::Estimate,
                    summarizer.interval(point.base, &reps.base, &base_level),
                    Some(design.base()),
                );
                estimate_row.note = summarizer.guard(&[design.base().seeds.len()], sampling, &estimate_row.note);
                rows.push(estimate_row);
                replicates.push(CellReplicates {
                    cell: cell.label.clone(),
                    group: base_name,
                    replicates: reps,
                    seed_estimates,
                    n_units: design.n_units(),
                });
            }
        }
        Ok(())
    }

    /// The sides of one analysis over the examples its rows cover (in sorted id order), and
    /// the cluster of each example.
    fn parts(
        &self,
        base_rows: &[usize],
        treatment_rows: Option<&[usize]>,
        all_rows: &[usize],
        where_: &dyn Fn(&str) -> String,
    ) -> Result<Parts> {
        let mut position = vec![ABSENT; self.examples.names.len()];
        let mut example_codes: Vec<u32> = all_rows.iter().map(|&r| self.examples.codes[r]).collect();
        example_codes.sort_unstable();
        example_codes.dedup();
        example_codes
            .iter()
            .enumerate()
            .for_each(|(i, &c)| position[c as usize] = i as u32);
        let n = example_codes.len();
        let base = self.side(base_rows, &position, n, &example_codes, &where_("base"))?;
        let treatment = treatment_rows
            .map(|t| self.side(t, &position, n, &example_codes, &where_("treatment")))
            .transpose()?;
        let clusters = self
            .clusters
            .as_ref()
            .map(|c| self.design_clusters(c, all_rows, &position, n))
            .transpose()?;
        Ok(Parts {
            base,
            treatment,
            clusters,
            n,
        })
    }

    /// One side: its rows arranged as seeds × runs × examples. Errors on duplicate rows and on
    /// runs that miss examples.
    fn side(&self, rows: &[usize], position: &[u32], n: usize, example_codes: &[u32], where_: &str) -> Result<Side> {
        let table = self.table;
        let run_of = |r: usize| table.run.as_ref().and_then(|v| v[r]).unwrap_or(0);
        let mut index: HashMap<(i64, i64), usize> = HashMap::new();
        let mut runs: Vec<((i64, i64), Vec<u32>)> = Vec::new();
        let mut last: Option<((i64, i64), usize)> = None;
        for &r in rows {
            let key = (table.seed[r], run_of(r));
            let k = match last {
                Some((last_key, k)) if last_key == key => k,
                _ => *index.entry(key).or_insert_with(|| {
                    runs.push((key, vec![ABSENT; n]));
                    runs.len() - 1
                }),
            };
            last = Some((key, k));
            let slots = &mut runs[k].1;
            let e = position[self.examples.codes[r] as usize] as usize;
            if slots[e] != ABSENT {
                return Err(self.duplicate(slots[e] as usize, r, where_));
            }
            slots[e] = r as u32;
        }
        runs.sort_unstable_by_key(|(key, _)| *key);
        let mut seeds: Vec<Seed> = Vec::new();
        for ((seed, run), slots) in runs {
            let covered = slots.iter().filter(|&&s| s != ABSENT).count();
            if let Some(missing) = slots.iter().position(|&s| s == ABSENT) {
                return Err(input(format!(
                    "seed {seed}, run {run} of {where_} has {covered} of the {n} examples (missing example '{}'); all runs of one analysis must cover the same examples",
                    self.examples.names[example_codes[missing] as usize]
                )));
            }
            let numbers = |c: Option<&crate::results::Numbers>| {
                c.map(|c| slots.iter().map(|&r| c.get(r as usize).unwrap_or(f64::NAN)).collect())
            };
            let outcomes = Outcomes {
                label: numbers(table.label.as_ref()),
                prediction: numbers(table.prediction.as_ref()),
                score: table
                    .score
                    .as_ref()
                    .map(|s| slots.iter().map(|&r| s[r as usize].unwrap_or(f64::NAN)).collect()),
            };
            match seeds.last_mut() {
                Some(last) if last.id == seed => last.runs.push(outcomes),
                _ => seeds.push(Seed {
                    id: seed,
                    runs: vec![outcomes],
                }),
            }
        }
        Ok(Side { seeds })
    }

    fn duplicate(&self, first: usize, second: usize, where_: &str) -> mb_stats_files::error::Error {
        let table = self.table;
        let differ: Vec<&str> = [Key::Group, Key::Step, Key::Task, Key::Layer]
            .into_iter()
            .filter(|k| k.value(table, first) != k.value(table, second))
            .map(Key::name)
            .collect();
        let hint = match differ.is_empty() {
            true => "each (seed, run, example) must appear once".to_string(),
            false => format!(
                "the rows differ in {}; use --by or a filter to separate them",
                differ.join(", ")
            ),
        };
        input(format!(
            "duplicate rows for seed {}, run {}, example '{}' in {where_}: {hint}",
            table.seed[first],
            Key::Run.value(table, first).unwrap_or_default(),
            self.examples.names[self.examples.codes[first] as usize],
        ))
    }

    /// Dense cluster ids of the design's examples; an example must have one cluster.
    fn design_clusters(&self, clusters: &Codes, rows: &[usize], position: &[u32], n: usize) -> Result<Vec<u32>> {
        let mut of_example = vec![ABSENT; n];
        for &r in rows {
            let e = position[self.examples.codes[r] as usize] as usize;
            let c = clusters.codes[r];
            if of_example[e] != ABSENT && of_example[e] != c {
                return Err(input(format!(
                    "column cluster: example '{}' is in clusters '{}' and '{}'; an example belongs to one cluster",
                    self.examples.names[self.examples.codes[r] as usize],
                    clusters.names[of_example[e] as usize],
                    clusters.names[c as usize]
                )));
            }
            of_example[e] = c;
        }
        let distinct: BTreeSet<u32> = of_example.iter().copied().collect();
        let dense: BTreeMap<u32, u32> = distinct.into_iter().enumerate().map(|(i, c)| (c, i as u32)).collect();
        Ok(of_example.iter().map(|c| dense[c]).collect())
    }
}

/// Keeps the seeds present on both sides, in the same order; describes the dropped ones.
fn pair_seeds(base: Side, treatment: Side) -> (Side, Side, String) {
    let ids = |s: &Side| s.seeds.iter().map(|x| x.id).collect::<BTreeSet<_>>();
    let (b_ids, t_ids) = (ids(&base), ids(&treatment));
    let list = |s: BTreeSet<i64>| s.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    let base_only: BTreeSet<i64> = b_ids.difference(&t_ids).copied().collect();
    let treatment_only: BTreeSet<i64> = t_ids.difference(&b_ids).copied().collect();
    let mut notes = Vec::new();
    if !base_only.is_empty() {
        notes.push(format!("dropped base-only seeds: {}", list(base_only)));
    }
    if !treatment_only.is_empty() {
        notes.push(format!("dropped treatment-only seeds: {}", list(treatment_only)));
    }
    let keep = |s: Side, other: &BTreeSet<i64>| Side {
        seeds: s.seeds.into_iter().filter(|x| other.contains(&x.id)).collect(),
    };
    (keep(base, &t_ids), keep(treatment, &b_ids), notes.join("; "))
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
    let context = &prepared.context;
    let mut out = Vec::new();
    for (cell, cell_rows) in &prepared.cells {
        let rows: Vec<usize> = match &options.comparison {
            Some((b, t)) => cell_rows
                .iter()
                .copied()
                .filter(|&r| b.matches(table, r) || t.matches(table, r))
                .collect(),
            None => cell_rows.clone(),
        };
        for group_rows in prepared.by_group(&rows) {
            let name = table.group[group_rows[0]].clone();
            let where_ = |_: &str| format!("group {name} (cell {})", cell.label);
            let Parts { base, clusters, .. } = context.parts(&group_rows, None, &group_rows, &where_)?;
            for seed in base.seeds {
                let (id, n_runs) = (seed.id, seed.runs.len());
                let fail = |e: String| input(format!("{}: {e}", where_("")));
                let design = Design::single(Side { seeds: vec![seed] }, clusters.clone()).map_err(|e| fail(e.0))?;
                let engine = Engine::new(&design, options.metric).map_err(fail)?;
                let resampler = Resampler::new(&design, Sampling::Examples, options.rng_seed);
                let point = engine.evaluate(&resampler.full()).base;
                let reps = engine.bootstrap(&resampler, options.nboot);
                let summarizer = Summarizer {
                    method: options.interval,
                    confidence: options.confidence,
                };
                let level = SeedLevel::drawn(Sampling::Examples, &[], design.n_units());
                let interval = summarizer.interval(point, &reps.base, &level);
                out.push(SeedRow {
                    cell: cell.label.clone(),
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

/// Fills Holm and BH adjusted p-values across the delta rows of all cells.
fn adjust_p_values(rows: &mut [Row]) {
    let tested: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].p_value.is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| rows[i].p_value).collect();
    for ((&i, h), b) in tested.iter().zip(holm(&p)).zip(benjamini_hochberg(&p)) {
        rows[i].p_holm = Some(h);
        rows[i].p_bh = Some(b);
    }
}
