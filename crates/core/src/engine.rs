//! The fast replicate evaluator.
//!
//! An *evaluation* is one column group of the engine: a run, or for [`Path::Linear`] metrics one
//! seed whose runs were averaged in advance (the weighted mean commutes with the run average).
//! A replicate's value for a side is the draw-weighted mean over seeds of the mean over the
//! seed's evaluations. For [`Path::Linear`] and [`Path::Sums`] metrics a block of replicates is
//! one matrix product, example weights (B × N) times per-example statistics (N × columns);
//! rank metrics rank each run in O(N) per replicate from orders sorted once.
//!
//! Time: O(nboot · N · columns / cores) for sums, O(nboot · N · runs / cores) for ranks.
//! Memory: O(N · columns + BLOCK · (N + columns)) working space, independent of nboot, plus the
//! nboot replicate values returned.

use std::ops::Range;

use ndarray::Array2;
use rayon::prelude::*;

use super::design::{Design, Outcomes, Side};
use super::metric::{Metric, Path, StatLayout, TieGroups, weighted_pearson};
use super::resample::{Draw, Resampler, Sampling};

/// Replicates evaluated together in one matrix product.
const BLOCK: usize = 32;

/// The most unit groups of the jackknife that measures the seed × unit interaction of a metric
/// that is not per-example (more groups add evaluations, not accuracy).
const JACKKNIFE_GROUPS: usize = 256;

/// The value of each side for one draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimates {
    /// The baseline (or only) procedure.
    pub base: f64,
    /// The treatment procedure of a comparison.
    pub treatment: Option<f64>,
}

/// Every replicate's value of each side, in replicate order.
#[derive(Clone, Debug, PartialEq)]
pub struct Replicates {
    /// Baseline (or only) procedure.
    pub base: Vec<f64>,
    /// Treatment procedure of a comparison.
    pub treatment: Option<Vec<f64>>,
}

/// Each seed's own estimate (runs averaged, all examples), per side, in the design's seed order.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedEstimates {
    /// Seeds of the baseline (or only) procedure.
    pub base: Vec<f64>,
    /// Seeds of the treatment procedure of a comparison.
    pub treatment: Option<Vec<f64>>,
    /// The seed × unit interaction (`None` with fewer than two units).
    pub interaction: Option<Interaction>,
}

/// The seed × unit interaction of an estimate: D = MS_res / (S·U) of the seeds × units table of
/// per-unit values (the two-way ANOVA residual mean square; for a metric that is not
/// per-example, of its jackknife pseudo-values). Its true share of the estimate's variance is D,
/// but the joint bootstrap counts it at the seed level, at the unit level and once more in the
/// product of the two draws.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Residual {
    /// MS_res / (S·U).
    pub variance: f64,
    /// S, the seeds of the table.
    pub seeds: usize,
}

/// [`Residual`]s of each side and of a paired delta (the per-seed differences).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interaction {
    /// The baseline (or only) procedure.
    pub base: Option<Residual>,
    /// The treatment procedure of a comparison.
    pub treatment: Option<Residual>,
    /// The paired delta of a comparison (sides with the same seeds in the same order).
    pub paired_delta: Option<Residual>,
}

/// The [`Residual`] of a seeds × units table (`None` with fewer than two seeds or units).
/// Time: O(S · U).
pub fn residual_variance(y: &[Vec<f64>]) -> Option<Residual> {
    let (s, u) = (y.len(), y.first().map_or(0, Vec::len));
    if s < 2 || u < 2 {
        return None;
    }
    let row: Vec<f64> = y.iter().map(|r| r.iter().sum::<f64>() / u as f64).collect();
    let column: Vec<f64> = (0..u).map(|j| y.iter().map(|r| r[j]).sum::<f64>() / s as f64).collect();
    let grand = row.iter().sum::<f64>() / s as f64;
    let ss: f64 = y
        .iter()
        .zip(&row)
        .map(|(r, m)| {
            r.iter()
                .zip(&column)
                .map(|(x, c)| (x - m - c + grand).powi(2))
                .sum::<f64>()
        })
        .sum();
    let df = ((s - 1) * (u - 1)) as f64;
    Some(Residual {
        variance: ss / df / (s * u) as f64,
        seeds: s,
    })
}

enum Kernel {
    /// Statistic columns: runs (or seeds) first, then one block per distinct label vector.
    Sums {
        layout: StatLayout,
        stats: Array2<f64>,
        label_offset: usize,
    },
    /// Per run, the order of `prediction` (Spearman) or `score` (AUC); per distinct label
    /// vector, its order (Spearman) and values (AUC).
    Rank {
        metric: Metric,
        runs: Vec<TieGroups>,
        label_orders: Vec<TieGroups>,
        labels: Vec<Vec<f64>>,
    },
}

/// Every run of `sides`, side by side, seed by seed.
fn runs_of<'a>(sides: &'a [&'a Side]) -> impl Iterator<Item = &'a Outcomes> {
    sides.iter().flat_map(|s| &s.seeds).flat_map(|s| &s.runs)
}

/// For each side, each seed's range of evaluation indices (one per seed for a linear metric,
/// one per run otherwise), and the number of evaluations.
fn seed_ranges(sides: &[&Side], metric: Metric) -> (Vec<Vec<Range<usize>>>, usize) {
    let mut seeds = Vec::new();
    let mut next = 0;
    for side in sides {
        let ranges = side
            .seeds
            .iter()
            .map(|seed| {
                let k = if metric.path() == Path::Linear {
                    1
                } else {
                    seed.runs.len()
                };
                next += k;
                next - k..next
            })
            .collect();
        seeds.push(ranges);
    }
    (seeds, next)
}

/// For each of the `evaluations`, the index of its run's distinct label vector, and those
/// vectors: runs with identical labels (the usual case) share label statistics. A linear metric
/// needs none.
fn label_groups<'a>(sides: &'a [&'a Side], metric: Metric, evaluations: usize) -> (Vec<usize>, Vec<&'a [f64]>) {
    let mut label_group = vec![0; evaluations];
    let mut distinct_labels: Vec<&[f64]> = Vec::new();
    if metric.path() != Path::Linear {
        for (k, run) in runs_of(sides).enumerate() {
            let label = run.label.as_deref().unwrap_or(&[]);
            label_group[k] = distinct_labels.iter().position(|l| *l == label).unwrap_or_else(|| {
                distinct_labels.push(label);
                distinct_labels.len() - 1
            });
        }
    }
    (label_group, distinct_labels)
}

impl Kernel {
    /// The statistic matrix of a linear or sums metric over `n` examples: one column block
    /// per evaluation, then one per distinct label vector.
    fn sums(metric: Metric, sides: &[&Side], n: usize, evaluations: usize, distinct_labels: &[&[f64]]) -> Self {
        let layout = StatLayout::new(metric, runs_of(sides));
        let (run_width, label_width) = (layout.run_width(), layout.label_width());
        let label_offset = evaluations * run_width;
        let mut stats = Array2::zeros((n, label_offset + distinct_labels.len() * label_width));
        let mut set = |j: usize, column: &[f64], scale: f64| {
            stats
                .column_mut(j)
                .iter_mut()
                .zip(column)
                .for_each(|(s, v)| *s += v * scale);
        };
        match metric.path() {
            // Linear metrics: one column per seed, the mean of its runs' columns.
            Path::Linear => {
                for (k, seed) in sides.iter().flat_map(|s| &s.seeds).enumerate() {
                    for run in &seed.runs {
                        set(k, &layout.run_columns(run)[0], 1.0 / seed.runs.len() as f64);
                    }
                }
            }
            _ => {
                for (k, run) in runs_of(sides).enumerate() {
                    for (j, column) in layout.run_columns(run).iter().enumerate() {
                        set(k * run_width + j, column, 1.0);
                    }
                }
                for (g, label) in distinct_labels.iter().enumerate() {
                    for (j, column) in layout.label_columns(label).iter().enumerate() {
                        set(label_offset + g * label_width + j, column, 1.0);
                    }
                }
            }
        }
        Kernel::Sums {
            layout,
            stats,
            label_offset,
        }
    }

    /// The rank orders of a rank metric: of each run's prediction (Spearman) or score (AUC),
    /// and of each distinct label vector.
    fn rank(metric: Metric, sides: &[&Side], distinct_labels: &[&[f64]]) -> Self {
        fn primary(metric: Metric, run: &Outcomes) -> Option<&[f64]> {
            match metric {
                Metric::Spearman => run.prediction.as_deref(),
                _ => run.score.as_deref(),
            }
        }
        Kernel::Rank {
            metric,
            runs: runs_of(sides)
                .map(|run| TieGroups::new(primary(metric, run).unwrap_or(&[])))
                .collect(),
            label_orders: distinct_labels.iter().map(|l| TieGroups::new(l)).collect(),
            labels: distinct_labels.iter().map(|l| l.to_vec()).collect(),
        }
    }
}

/// Evaluates a metric on any draw of one design.
pub struct Engine {
    kernel: Kernel,
    /// For each side, each seed's range of evaluation indices.
    seeds: Vec<Vec<Range<usize>>>,
    /// Whether the metric is per-example ([`Path::Linear`]: one statistic column per seed).
    linear: bool,
    /// For each evaluation, the index of its distinct label vector (Sums path).
    label_group: Vec<usize>,
    unit_of_example: Vec<u32>,
}

impl Engine {
    /// Prepares `metric` on `design`: checks every run's values and precomputes the statistic
    /// matrix or the rank orders. Time: O(N · columns) or O(runs · N log N).
    pub fn new(design: &Design, metric: Metric) -> Result<Self, String> {
        let sides: Vec<&Side> = std::iter::once(design.base()).chain(design.treatment()).collect();
        runs_of(&sides).try_for_each(|r| metric.check(r))?;
        let (seeds, evaluations) = seed_ranges(&sides, metric);
        let (label_group, distinct_labels) = label_groups(&sides, metric, evaluations);
        let kernel = match metric.path() {
            Path::Linear | Path::Sums => {
                Kernel::sums(metric, &sides, design.n_examples(), evaluations, &distinct_labels)
            }
            Path::Rank => Kernel::rank(metric, &sides, &distinct_labels),
        };
        Ok(Self {
            kernel,
            linear: metric.path() == Path::Linear,
            seeds,
            label_group,
            unit_of_example: design.unit_of_example().to_vec(),
        })
    }

    /// The estimates for one draw ([`Resampler::full`] gives the full-data point estimate).
    pub fn evaluate(&self, draw: &Draw) -> Estimates {
        let values = self.evaluations(std::slice::from_ref(draw));
        self.combine(draw, &values[0])
    }

    /// Every seed's own estimate on the full examples (its runs averaged), per side: what the
    /// seed level of the calibrated intervals is measured from. Time: one full evaluation plus
    /// O(seeds · runs).
    pub fn per_seed(&self, resampler: &Resampler) -> SeedEstimates {
        let full = resampler.full();
        let values = self.evaluations(std::slice::from_ref(&full)).remove(0);
        let seed_mean = |range: &Range<usize>| values[range.clone()].iter().sum::<f64>() / range.len() as f64;
        SeedEstimates {
            base: self.seeds[0].iter().map(seed_mean).collect(),
            treatment: self.seeds.get(1).map(|t| t.iter().map(seed_mean).collect()),
            interaction: self.interaction(),
        }
    }

    /// The seed × unit interaction variances (see [`Interaction`]): from the per-unit values of
    /// a per-example metric, from jackknife pseudo-values of any other. Time: O(N · seeds) for
    /// per-example metrics, [`JACKKNIFE_GROUPS`] evaluations for the others.
    fn interaction(&self) -> Option<Interaction> {
        let n_units = self.unit_of_example.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
        if n_units < 2 {
            return None;
        }
        // y[k][g]: evaluation k's value on unit group g, scaled so that the mean over groups is
        // its full-data value.
        let per_group: Vec<Vec<f64>> = match &self.kernel {
            Kernel::Sums { stats, .. } if self.linear => {
                let scale = n_units as f64 / self.unit_of_example.len() as f64;
                let evaluations = self.seeds.iter().flatten().map(|r| r.end).max().unwrap_or(0);
                (0..evaluations)
                    .map(|k| {
                        let mut y = vec![0.0; n_units];
                        for (e, &u) in self.unit_of_example.iter().enumerate() {
                            y[u as usize] += stats[[e, k]] * scale;
                        }
                        y
                    })
                    .collect()
            }
            _ => self.pseudo_values(n_units),
        };
        let seed_values = |ranges: &[Range<usize>]| -> Vec<Vec<f64>> {
            ranges
                .iter()
                .map(|r| {
                    let runs = r.len() as f64;
                    let groups = per_group[r.start].len();
                    (0..groups)
                        .map(|g| r.clone().map(|k| per_group[k][g]).sum::<f64>() / runs)
                        .collect()
                })
                .collect()
        };
        let base = seed_values(&self.seeds[0]);
        let treatment = self.seeds.get(1).map(|t| seed_values(t));
        let paired_delta = treatment.as_ref().filter(|t| t.len() == base.len()).map(|t| {
            t.iter()
                .zip(&base)
                .map(|(t, b)| t.iter().zip(b).map(|(t, b)| t - b).collect())
                .collect::<Vec<Vec<f64>>>()
        });
        Some(Interaction {
            base: residual_variance(&base),
            treatment: treatment.as_deref().and_then(residual_variance),
            paired_delta: paired_delta.as_deref().and_then(residual_variance),
        })
    }

    /// Delete-a-group jackknife pseudo-values of every evaluation, `[k][g]`: units in at most
    /// [`JACKKNIFE_GROUPS`] groups (unit u in group u mod G), and for group g the value
    /// G·f − (G − 1)·f₋g, f₋g the evaluation without the group's units. For a per-example
    /// metric they are exactly the group means; for any other metric they linearise it, so the
    /// seeds × groups table measures its seed × unit interaction the same way.
    /// Time: G evaluations (a bootstrap of G replicates).
    fn pseudo_values(&self, n_units: usize) -> Vec<Vec<f64>> {
        let groups = n_units.min(JACKKNIFE_GROUPS);
        let full = Draw {
            base_seeds: Vec::new(),
            treatment_seeds: Vec::new(),
            units: vec![1; n_units],
        };
        let whole = self.evaluations(std::slice::from_ref(&full)).remove(0);
        let without: Vec<Vec<f64>> = (0..groups)
            .collect::<Vec<usize>>()
            .par_chunks(BLOCK)
            .flat_map_iter(|block| {
                let draws: Vec<Draw> = block
                    .iter()
                    .map(|&g| Draw {
                        units: (0..n_units).map(|u| u32::from(u % groups != g)).collect(),
                        ..full.clone()
                    })
                    .collect();
                self.evaluations(&draws)
            })
            .collect();
        let g = groups as f64;
        (0..whole.len())
            .map(|k| without.iter().map(|w| g * whole[k] - (g - 1.0) * w[k]).collect())
            .collect()
    }

    /// `nboot` replicates drawn by `resampler`, evaluated in parallel blocks. The result does
    /// not depend on the thread count: each replicate reads its own random stream.
    pub fn bootstrap(&self, resampler: &Resampler, nboot: usize) -> Replicates {
        // Without example resampling every replicate sees the full examples: evaluate once.
        let fixed = (resampler.sampling() == Sampling::Seeds).then(|| self.evaluations(&[resampler.full()]).remove(0));
        let blocks: Vec<Vec<Estimates>> = (0..nboot.div_ceil(BLOCK))
            .into_par_iter()
            .map(|block| {
                let range = block * BLOCK..((block + 1) * BLOCK).min(nboot);
                if crate::interrupt::requested() {
                    return Vec::new(); // stopped: the caller discards the short result
                }
                let draws: Vec<Draw> = range.map(|b| resampler.draw(b as u64)).collect();
                match &fixed {
                    Some(values) => draws.iter().map(|d| self.combine(d, values)).collect(),
                    None => {
                        let values = self.evaluations(&draws);
                        draws.iter().zip(&values).map(|(d, v)| self.combine(d, v)).collect()
                    }
                }
            })
            .collect();
        let all = blocks.into_iter().flatten();
        let (base, treatment): (Vec<f64>, Vec<Option<f64>>) = all.map(|e| (e.base, e.treatment)).unzip();
        let treatment = treatment.into_iter().collect::<Option<Vec<f64>>>();
        Replicates { base, treatment }
    }

    /// Each draw's value of every evaluation.
    fn evaluations(&self, draws: &[Draw]) -> Vec<Vec<f64>> {
        let n = self.unit_of_example.len();
        let mut weights = Array2::zeros((draws.len(), n));
        for (mut row, draw) in weights.rows_mut().into_iter().zip(draws) {
            row.iter_mut()
                .zip(draw.example_weights(&self.unit_of_example))
                .for_each(|(w, d)| *w = d);
        }
        match &self.kernel {
            Kernel::Sums {
                layout,
                stats,
                label_offset,
            } => {
                let sums = weights.dot(stats);
                let (run_width, label_width) = (layout.run_width(), layout.label_width());
                weights
                    .rows()
                    .into_iter()
                    .zip(sums.rows())
                    .map(|(w, s)| {
                        let total = w.sum();
                        let s = s.as_slice().expect("row-major product");
                        let labels =
                            |g: usize| &s[label_offset + g * label_width..label_offset + (g + 1) * label_width];
                        let run = |k: usize| &s[k * run_width..(k + 1) * run_width];
                        self.label_group
                            .iter()
                            .enumerate()
                            .map(|(k, &g)| layout.finish(run(k), labels(g), total))
                            .collect()
                    })
                    .collect()
            }
            Kernel::Rank {
                metric,
                runs,
                label_orders,
                labels,
            } => {
                // Example-major weights (n × b): the rank scans run over contiguous replicates.
                let b = draws.len();
                let mut weights_t = vec![0.0; n * b];
                for (j, row) in weights.rows().into_iter().enumerate() {
                    row.iter().enumerate().for_each(|(e, &w)| weights_t[e * b + j] = w);
                }
                let label_ranks: Vec<Vec<f64>> = match metric {
                    Metric::Spearman => label_orders
                        .iter()
                        .map(|order| {
                            let mut ranks = vec![0.0; n * b];
                            order.midranks(&weights_t, b, &mut ranks);
                            ranks
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let mut values = vec![vec![0.0; runs.len()]; b];
                let (mut ranks, mut run_values) = (vec![0.0; n * b], vec![0.0; b]);
                for (k, (run, &g)) in runs.iter().zip(&self.label_group).enumerate() {
                    match metric {
                        Metric::Spearman => {
                            run.midranks(&weights_t, b, &mut ranks);
                            weighted_pearson(&ranks, &label_ranks[g], &weights_t, b, &mut run_values);
                        }
                        _ => run.auc(&labels[g], &weights_t, b, &mut run_values),
                    }
                    values.iter_mut().zip(&run_values).for_each(|(v, &x)| v[k] = x);
                }
                values
            }
        }
    }

    /// Side values from evaluation values: mean over each seed's evaluations, then the mean
    /// over seeds weighted by how often the draw picked them.
    fn combine(&self, draw: &Draw, values: &[f64]) -> Estimates {
        let side = |ranges: &[Range<usize>], counts: &[u32]| {
            let (mut sum, mut drawn) = (0.0, 0.0);
            for (range, &count) in ranges.iter().zip(counts) {
                if count > 0 {
                    let seed_mean = values[range.clone()].iter().sum::<f64>() / range.len() as f64;
                    sum += count as f64 * seed_mean;
                    drawn += count as f64;
                }
            }
            sum / drawn
        };
        Estimates {
            base: side(&self.seeds[0], &draw.base_seeds),
            treatment: self.seeds.get(1).map(|t| side(t, &draw.treatment_seeds)),
        }
    }
}
