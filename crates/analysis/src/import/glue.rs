//! GLUE predictions of the MultiBERTs release: `index.tsv` (`file, task, pretrain_id, n_steps,
//! lr, ft_seed, release`), one whitespace-separated file of class scores per run (rows = dev
//! examples; STS-B has one regression column) and `<TASK>_dev_labels` (one label per line).

use std::collections::BTreeMap;
use std::path::Path;

use super::{IndexRow, class, read_index, read_matrix};
use crate::results::{ExampleIds, Numbers, ResultsTable, Texts, footer};
use mb_stats_core::metric::weighted_pearson;
use mb_stats_files::error::{Result, input};

/// One run's predictions.
struct RunPredictions {
    prediction: Vec<f64>,
    /// Positive-class probability (binary classification only).
    score: Option<Vec<f64>>,
    /// Accuracy (classification) or Pearson correlation (regression), to pick learning rates.
    quality: f64,
}

/// Imports one task. `labels` defaults to `<TASK>_dev_labels` beside the index; `best_lr` keeps,
/// per (release, n_steps), the learning rate with the best mean run quality (accuracy, or
/// Pearson for regression), as the paper does. Without it, runs are (learning rate, fine-tuning
/// seed) pairs: `run` = lr rank × 1000 + fine-tuning seed, and the `lr` column tells them apart.
pub fn import(index: &Path, task: &str, labels: Option<&Path>, best_lr: bool) -> Result<ResultsTable> {
    let rows = read_index(index, Some(task))?;
    let default_labels = index
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{task}_dev_labels"));
    let labels_path = labels.unwrap_or(&default_labels);
    let label_matrix = read_matrix(labels_path)?;
    if label_matrix[0].len() != 1 {
        return Err(input(format!(
            "{}: {} values per line, expected one label",
            labels_path.display(),
            label_matrix[0].len()
        )));
    }
    let gold: Vec<f64> = label_matrix.iter().map(|r| r[0]).collect();
    let mut runs: Vec<(IndexRow, RunPredictions)> = Vec::new();
    let mut width = None;
    for row in rows {
        if !row.file.is_file() {
            return Err(input(format!(
                "{}: lists {} (seed {}, lr {}, ft_seed {}), which does not exist",
                index.display(),
                row.file.display(),
                row.pretrain_id,
                row.lr,
                row.ft_seed
            )));
        }
        let scores = read_matrix(&row.file)?;
        if scores.len() != gold.len() {
            return Err(input(format!(
                "{}: {} rows, but {} has {} labels",
                row.file.display(),
                scores.len(),
                labels_path.display(),
                gold.len()
            )));
        }
        if *width.get_or_insert(scores[0].len()) != scores[0].len() {
            return Err(input(format!(
                "{}: {} columns, other runs have {width:?}",
                row.file.display(),
                scores[0].len()
            )));
        }
        let run = predictions(&scores, &gold, labels_path)?;
        runs.push((row, run));
    }
    if best_lr {
        runs = keep_best_lr(runs);
    }
    let classification = width.is_some_and(|w| w > 1);
    Ok(table(runs, &gold, classification, task))
}

fn predictions(scores: &[Vec<f64>], gold: &[f64], labels_path: &Path) -> Result<RunPredictions> {
    if scores[0].len() == 1 {
        let prediction: Vec<f64> = scores.iter().map(|r| r[0]).collect();
        let mut quality = [0.0];
        weighted_pearson(&prediction, gold, &vec![1.0; gold.len()], 1, &mut quality);
        return Ok(RunPredictions {
            prediction,
            score: None,
            quality: quality[0],
        });
    }
    for (i, &y) in gold.iter().enumerate() {
        let c = class(y, labels_path, &format!("line {}", i + 1))?;
        if c < 0 || c as usize >= scores[0].len() {
            return Err(input(format!(
                "{}: line {}: label {c} is out of range for {} class scores per row",
                labels_path.display(),
                i + 1,
                scores[0].len()
            )));
        }
    }
    let argmax = |r: &Vec<f64>| (0..r.len()).fold(0, |best, j| if r[j] > r[best] { j } else { best }) as f64;
    let prediction: Vec<f64> = scores.iter().map(argmax).collect();
    let correct = prediction.iter().zip(gold).filter(|(p, y)| p == y).count();
    // Binary tasks: the positive-class probability (scores are used as given when they are
    // probabilities, else passed through a softmax).
    let score = (scores[0].len() == 2).then(|| {
        let probabilities = scores
            .iter()
            .all(|r| r.iter().all(|&v| (0.0..=1.0).contains(&v)) && (r[0] + r[1] - 1.0).abs() < 1e-3);
        scores
            .iter()
            .map(|r| {
                if probabilities {
                    r[1]
                } else {
                    1.0 / (1.0 + (r[0] - r[1]).exp())
                }
            })
            .collect()
    });
    Ok(RunPredictions {
        prediction,
        score,
        quality: correct as f64 / gold.len() as f64,
    })
}

/// Keeps, per (release, step), the runs of the learning rate with the best mean quality (ties:
/// the smaller rate).
fn keep_best_lr(runs: Vec<(IndexRow, RunPredictions)>) -> Vec<(IndexRow, RunPredictions)> {
    let mut quality: BTreeMap<(String, i64), BTreeMap<u64, (f64, usize)>> = BTreeMap::new();
    for (row, run) in &runs {
        let entry = quality
            .entry((row.release.clone(), row.step))
            .or_default()
            .entry(row.lr.to_bits())
            .or_default();
        entry.0 += run.quality;
        entry.1 += 1;
    }
    let best: BTreeMap<(String, i64), u64> = quality
        .into_iter()
        .map(|(key, by_lr)| {
            let mut rates: Vec<(u64, f64)> = by_lr.into_iter().map(|(lr, (sum, n))| (lr, sum / n as f64)).collect();
            rates.sort_by(|a, b| {
                b.1.total_cmp(&a.1)
                    .then(f64::from_bits(a.0).total_cmp(&f64::from_bits(b.0)))
            });
            (key, rates[0].0)
        })
        .collect();
    runs.into_iter()
        .filter(|(row, _)| best[&(row.release.clone(), row.step)] == row.lr.to_bits())
        .collect()
}

fn table(runs: Vec<(IndexRow, RunPredictions)>, gold: &[f64], classification: bool, task: &str) -> ResultsTable {
    // Rank of each learning rate within its (release, step), to number runs uniquely.
    let mut rates: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for (row, _) in &runs {
        let list = rates.entry((row.release.clone(), row.step)).or_default();
        if !list.contains(&row.lr) {
            list.push(row.lr);
        }
    }
    rates.values_mut().for_each(|l| l.sort_by(f64::total_cmp));
    let n = gold.len();
    let total = runs.len() * n;
    let (mut group, mut seed, mut step, mut run_id, mut example) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut label, mut prediction, mut score, mut lr) = (vec![], vec![], vec![], vec![]);
    let has_score = runs.iter().all(|(_, r)| r.score.is_some()) && !runs.is_empty();
    for (row, run) in &runs {
        let lrs = &rates[&(row.release.clone(), row.step)];
        let rank = lrs.iter().position(|&l| l == row.lr).unwrap_or(0) as i64;
        let id = if lrs.len() == 1 {
            row.ft_seed
        } else {
            rank * 1000 + row.ft_seed
        };
        for e in 0..n {
            group.push(row.release.clone());
            seed.push(row.pretrain_id);
            step.push(Some(row.step));
            run_id.push(Some(id));
            example.push(e as i64);
            label.push(gold[e]);
            prediction.push(run.prediction[e]);
            score.push(run.score.as_ref().map(|s| s[e]));
            lr.push(Some(row.lr));
        }
    }
    let numbers = |v: Vec<f64>| match classification {
        true => Numbers::Int(v.into_iter().map(|x| Some(x as i64)).collect()),
        false => Numbers::Float(v.into_iter().map(Some).collect()),
    };
    ResultsTable {
        group: group.into(),
        seed,
        step: Some(step),
        run: Some(run_id),
        task: Some(Texts::repeat(Some(task), total)),
        layer: None,
        example: ExampleIds::Int(example),
        label: Some(numbers(label)),
        prediction: Some(numbers(prediction)),
        score: has_score.then_some(score),
        cluster: None,
        extra: vec![("lr".to_string(), lr)],
        metadata: vec![(footer::IMPORT.into(), format!("glue ({task})"))],
    }
}
