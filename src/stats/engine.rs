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

use super::design::{Design, Side};
use super::metric::{Metric, Path, StatLayout, TieGroups, weighted_pearson};
use super::resample::{Draw, Resampler, Sampling};

/// Replicates evaluated together in one matrix product.
const BLOCK: usize = 32;

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

/// Per-run ordering for a rank metric.
struct RankRun {
    /// Order of `prediction` (Spearman) or `score` (AUC).
    primary: TieGroups,
    /// Order of `label` (Spearman only).
    label_order: Option<TieGroups>,
    /// Labels (AUC only).
    labels: Vec<f64>,
}

enum Kernel {
    Sums { layout: StatLayout, stats: Array2<f64> },
    Rank { metric: Metric, runs: Vec<RankRun> },
}

/// Evaluates a metric on any draw of one design.
pub struct Engine {
    kernel: Kernel,
    /// For each side, each seed's range of evaluation indices.
    seeds: Vec<Vec<Range<usize>>>,
    n_evaluations: usize,
    unit_of_example: Vec<u32>,
}

impl Engine {
    /// Prepares `metric` on `design`: checks every run's values and precomputes the statistic
    /// matrix or the rank orders. Time: O(N · columns) or O(runs · N log N).
    pub fn new(design: &Design, metric: Metric) -> Result<Self, String> {
        let sides: Vec<&Side> = std::iter::once(design.base()).chain(design.treatment()).collect();
        let runs = || sides.iter().flat_map(|s| &s.seeds).flat_map(|s| &s.runs);
        runs().try_for_each(|r| metric.check(r))?;
        let n = design.n_examples();
        let mut seeds = Vec::new();
        let mut next = 0;
        for side in &sides {
            let ranges = side
                .seeds
                .iter()
                .map(|seed| {
                    let k = if metric.path() == Path::Linear { 1 } else { seed.runs.len() };
                    next += k;
                    next - k..next
                })
                .collect();
            seeds.push(ranges);
        }
        let kernel = match metric.path() {
            Path::Linear | Path::Sums => {
                let layout = StatLayout::new(metric, runs());
                let width = layout.width();
                let mut stats = Array2::zeros((n, next * width));
                let seed_list = sides.iter().flat_map(|s| &s.seeds);
                for (k, seed) in seed_list.clone().enumerate().filter(|_| metric.path() == Path::Linear) {
                    // Linear metrics: one column per seed, the mean of its runs' columns.
                    for run in &seed.runs {
                        let column = &layout.columns(run)[0];
                        let scale = 1.0 / seed.runs.len() as f64;
                        stats.column_mut(k).iter_mut().zip(column).for_each(|(s, v)| *s += v * scale);
                    }
                }
                if metric.path() == Path::Sums {
                    for (k, run) in seed_list.flat_map(|s| &s.runs).enumerate() {
                        for (j, column) in layout.columns(run).into_iter().enumerate() {
                            stats.column_mut(k * width + j).assign(&ndarray::Array1::from(column));
                        }
                    }
                }
                Kernel::Sums { layout, stats }
            }
            Path::Rank => Kernel::Rank {
                metric,
                runs: runs()
                    .map(|run| {
                        let label = run.label.clone().unwrap_or_default();
                        match metric {
                            Metric::Spearman => RankRun {
                                primary: TieGroups::new(run.prediction.as_deref().unwrap_or(&[])),
                                label_order: Some(TieGroups::new(&label)),
                                labels: Vec::new(),
                            },
                            _ => RankRun {
                                primary: TieGroups::new(run.score.as_deref().unwrap_or(&[])),
                                label_order: None,
                                labels: label,
                            },
                        }
                    })
                    .collect(),
            },
        };
        Ok(Self { kernel, seeds, n_evaluations: next, unit_of_example: design.unit_of_example().to_vec() })
    }

    /// The estimates for one draw ([`Resampler::full`] gives the full-data point estimate).
    pub fn evaluate(&self, draw: &Draw) -> Estimates {
        let values = self.evaluations(std::slice::from_ref(draw));
        self.combine(draw, &values[0])
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
            row.iter_mut().zip(draw.example_weights(&self.unit_of_example)).for_each(|(w, d)| *w = d);
        }
        match &self.kernel {
            Kernel::Sums { layout, stats } => {
                let sums = weights.dot(stats);
                let width = layout.width();
                weights
                    .rows()
                    .into_iter()
                    .zip(sums.rows())
                    .map(|(w, s)| {
                        let total = w.sum();
                        let s = s.as_slice().expect("row-major product");
                        (0..self.n_evaluations).map(|k| layout.finish(&s[k * width..(k + 1) * width], total)).collect()
                    })
                    .collect()
            }
            Kernel::Rank { metric, runs } => {
                let (mut rx, mut ry) = (vec![0.0; n], vec![0.0; n]);
                weights
                    .rows()
                    .into_iter()
                    .map(|w| {
                        let w = w.as_slice().expect("row-major weights");
                        runs.iter()
                            .map(|run| match (metric, &run.label_order) {
                                (Metric::Spearman, Some(label_order)) => {
                                    run.primary.midranks(w, &mut rx);
                                    label_order.midranks(w, &mut ry);
                                    weighted_pearson(&rx, &ry, w)
                                }
                                _ => run.primary.auc(&run.labels, w),
                            })
                            .collect()
                    })
                    .collect()
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
