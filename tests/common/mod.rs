//! Shared helpers of the integration tests: random designs and a slow, plainly written
//! implementation of the Multi-Bootstrap definition.
// Each test binary uses a subset of these helpers; the rest would warn as unused there.
#![allow(dead_code)]

use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
use mb_stats_core::metric::{CONSTANT_TOLERANCE, Metric};
use mb_stats_core::resample::Draw;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Kinds of values a random design carries.
#[derive(Clone, Copy)]
pub enum Values {
    /// Binary labels and predictions, scores with ties.
    Binary,
    /// Three classes.
    Multiclass,
    /// Continuous labels and predictions rounded to create ties.
    Continuous,
}

/// A random side: `seeds` seeds with `runs[i]` runs each, over `n` examples.
pub fn random_side(
    rng: &mut ChaCha8Rng,
    seed_ids: &[i64],
    runs: &[usize],
    n: usize,
    values: Values,
    truth: &[f64],
) -> Side {
    let seeds = seed_ids
        .iter()
        .zip(runs)
        .map(|(&id, &r)| Seed {
            id,
            runs: (0..r)
                .map(|_| {
                    let (label, prediction): (Vec<f64>, Vec<f64>) = truth
                        .iter()
                        .map(|&y| match values {
                            Values::Binary => (y, if rng.random::<f64>() < 0.75 { y } else { 1.0 - y }),
                            Values::Multiclass => (
                                y,
                                if rng.random::<f64>() < 0.6 {
                                    y
                                } else {
                                    rng.random_range(0..3) as f64
                                },
                            ),
                            Values::Continuous => (y, ((y + rng.random::<f64>() * 2.0 - 1.0) * 5.0).round() / 5.0),
                        })
                        .unzip();
                    let score = (0..n).map(|_| (rng.random::<f64>() * 10.0).round() / 10.0).collect();
                    Outcomes {
                        label: Some(label),
                        prediction: Some(prediction),
                        score: Some(score),
                    }
                })
                .collect(),
        })
        .collect();
    Side { seeds }
}

/// Ground-truth example values for `n` examples.
pub fn truth(rng: &mut ChaCha8Rng, n: usize, values: Values) -> Vec<f64> {
    (0..n)
        .map(|_| match values {
            Values::Binary => f64::from(rng.random::<f64>() < 0.4),
            Values::Multiclass => rng.random_range(0..3) as f64,
            Values::Continuous => (rng.random::<f64>() * 4.0 * 5.0).round() / 5.0,
        })
        .collect()
}

/// The designs the reference tests cover: one procedure, paired, unpaired with a one-seed
/// side, uneven runs, clusters, labels that differ between runs.
pub fn designs(values: Values) -> Vec<(&'static str, Design)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 23;
    let y = truth(&mut rng, n, values);
    let clusters: Vec<u32> = (0..n as u32).map(|e| e / 4).collect();
    let mut side = |ids: &[i64], runs: &[usize]| random_side(&mut rng, ids, runs, n, values, &y);
    let single = side(&[0, 1, 2, 3], &[1, 2, 3, 1]);
    let single_clustered = side(&[0, 1, 2], &[2, 2, 2]);
    let (pb, pt) = (
        side(&[0, 1, 2, 3, 4], &[2, 1, 2, 3, 1]),
        side(&[0, 1, 2, 3, 4], &[1, 2, 2, 1, 3]),
    );
    let (ub, ut) = (side(&[7], &[3]), side(&[0, 1, 2, 5, 6, 9], &[1, 1, 2, 1, 1, 2]));
    let (cb, ct) = (side(&[0, 1, 2], &[2, 2, 2]), side(&[0, 1, 2], &[1, 3, 1]));
    // Labels that differ between runs (e.g. noisy relabelling): no shared label statistics.
    let mut relabelled = side(&[0, 1, 2], &[2, 1, 2]);
    for (i, seed) in relabelled.seeds.iter_mut().enumerate() {
        let labels = seed.runs[0].label.as_mut().unwrap();
        labels[i] = match values {
            Values::Binary => 1.0 - labels[i],
            Values::Multiclass => (labels[i] + 1.0) % 3.0,
            Values::Continuous => labels[i] + 0.2,
        };
    }
    vec![
        ("single", Design::single(single, None).unwrap()),
        (
            "single clustered",
            Design::single(single_clustered, Some(clusters.clone())).unwrap(),
        ),
        ("paired", Design::compare(pb, pt, Pairing::Paired, None).unwrap()),
        (
            "unpaired one-seed base",
            Design::compare(ub, ut, Pairing::Unpaired, None).unwrap(),
        ),
        (
            "paired clustered",
            Design::compare(cb, ct, Pairing::Paired, Some(clusters)).unwrap(),
        ),
        ("labels differ by run", Design::single(relabelled, None).unwrap()),
    ]
}

/// The metric by its textbook definition on a plain list of (label, prediction, score).
pub fn slow_metric(metric: Metric, rows: &[(f64, f64, f64)]) -> f64 {
    let n = rows.len() as f64;
    let count = |f: &dyn Fn(&(f64, f64, f64)) -> bool| rows.iter().filter(|r| f(r)).count() as f64;
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let tp = count(&|r| r.0 == 1.0 && r.1 == 1.0);
    let fp = count(&|r| r.0 != 1.0 && r.1 == 1.0);
    let fn_ = count(&|r| r.0 == 1.0 && r.1 != 1.0);
    let tn = count(&|r| r.0 != 1.0 && r.1 != 1.0);
    match metric {
        Metric::Accuracy => count(&|r| r.0 == r.1) / n,
        Metric::Mean => rows.iter().map(|r| r.2).sum::<f64>() / n,
        Metric::Precision => div(tp, tp + fp),
        Metric::Recall => div(tp, tp + fn_),
        Metric::F1 => {
            let (p, r) = (div(tp, tp + fp), div(tp, tp + fn_));
            div(2.0 * p * r, p + r)
        }
        Metric::Mcc => {
            let d = (tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_);
            if d > 0.0 { (tp * tn - fp * fn_) / d.sqrt() } else { 0.0 }
        }
        Metric::MacroF1 => {
            let mut classes: Vec<f64> = rows.iter().flat_map(|r| [r.0, r.1]).collect();
            classes.sort_by(f64::total_cmp);
            classes.dedup();
            let f1s: Vec<f64> = classes
                .iter()
                .map(|&c| {
                    let tp = count(&|r| r.0 == c && r.1 == c);
                    let (p, r) = (div(tp, count(&|r| r.1 == c)), div(tp, count(&|r| r.0 == c)));
                    div(2.0 * p * r, p + r)
                })
                .collect();
            f1s.iter().sum::<f64>() / f1s.len() as f64
        }
        Metric::Pearson => slow_pearson(
            &rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Metric::Spearman => {
            let x: Vec<f64> = rows.iter().map(|r| r.1).collect();
            let y: Vec<f64> = rows.iter().map(|r| r.0).collect();
            slow_pearson(&slow_midranks(&x), &slow_midranks(&y))
        }
        Metric::Auc => {
            let (mut wins, mut pairs) = (0.0, 0.0);
            for p in rows.iter().filter(|r| r.0 == 1.0) {
                for q in rows.iter().filter(|r| r.0 == 0.0) {
                    pairs += 1.0;
                    wins += if p.2 > q.2 {
                        1.0
                    } else if p.2 == q.2 {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
            if pairs > 0.0 { wins / pairs } else { 0.5 }
        }
    }
}

/// Average ranks, 1-based, by counting.
pub fn slow_midranks(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&a| {
            let less = v.iter().filter(|&&b| b < a).count() as f64;
            let equal = v.iter().filter(|&&b| b == a).count() as f64;
            less + (equal + 1.0) / 2.0
        })
        .collect()
}

/// Pearson correlation by the centered formula; 0 for a constant side.
pub fn slow_pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    let m2x: f64 = x.iter().map(|a| a * a).sum();
    let m2y: f64 = y.iter().map(|b| b * b).sum();
    if sxx <= CONSTANT_TOLERANCE * m2x || syy <= CONSTANT_TOLERANCE * m2y || m2x == 0.0 || m2y == 0.0 {
        return 0.0;
    }
    (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
}

/// One side's replicate value by the definition: expand the drawn examples into a list, score
/// every run on it, average runs within each seed, then average the drawn seeds (with
/// multiplicity).
pub fn slow_side(metric: Metric, side: &Side, seed_counts: &[u32], design: &Design, draw: &Draw) -> f64 {
    let mut drawn_examples = Vec::new();
    for e in 0..design.n_examples() {
        let unit = design.unit_of_example()[e] as usize;
        drawn_examples.extend(std::iter::repeat_n(e, draw.units[unit] as usize));
    }
    let mut seed_values = Vec::new();
    for (seed, &count) in side.seeds.iter().zip(seed_counts) {
        let run_values: Vec<f64> = seed
            .runs
            .iter()
            .map(|run| {
                let rows: Vec<(f64, f64, f64)> = drawn_examples
                    .iter()
                    .map(|&e| {
                        let get = |v: &Option<Vec<f64>>| v.as_ref().map_or(f64::NAN, |v| v[e]);
                        (get(&run.label), get(&run.prediction), get(&run.score))
                    })
                    .collect();
                slow_metric(metric, &rows)
            })
            .collect();
        let seed_value = run_values.iter().sum::<f64>() / run_values.len() as f64;
        seed_values.extend(std::iter::repeat_n(seed_value, count as usize));
    }
    seed_values.iter().sum::<f64>() / seed_values.len() as f64
}
