//! Winogender coreference predictions (Section 4 of the MultiBERTs paper). One folder per group
//! (`base`, `cda_intervention-50k`, `from_scratch`, ...), each with `run_info.tsv` (an index
//! column, `pretrain_seed`, `finetune_seed`), `preds.tsv` (one row per run, one column per
//! example; 0 = the occupation, 1 = the other participant) and `label_info.tsv` (one row per
//! example: `gender`, `answer`, `occupation`, `template_idx`, ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Tsv, class, read_matrix};
use crate::results::{ExampleIds, Numbers, ResultsTable, Texts, footer};
use mb_stats_files::error::{Result, input};

/// The task name written for per-example rows.
pub const TASK: &str = "winogender";
/// The task name written for the bias table.
pub const BIAS_TASK: &str = "winogender-bias";

/// One group folder, read and checked.
struct Group {
    name: String,
    /// (pretraining seed, fine-tuning seed) per run.
    runs: Vec<(i64, i64)>,
    /// Predicted referent per run and example.
    preds: Vec<Vec<i64>>,
    answer: Vec<i64>,
    gender: Vec<String>,
    occupation: Vec<String>,
    template: Vec<String>,
}

/// Reads one group's folder of the coreference release: its predictions and the Winogender
/// fields, each file checked against the others. (Long: one check per file of the release layout,
/// in the order the release documents them.)
fn read_group(dir: &Path) -> Result<Group> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| input(format!("{}: expected a group folder", dir.display())))?
        .to_string();
    let run_info = Tsv::read(&dir.join("run_info.tsv"))?;
    let (seed, finetune) = (run_info.column("pretrain_seed")?, run_info.column("finetune_seed")?);
    let runs = (0..run_info.len())
        .map(|r| {
            Ok((
                run_info.parse(r, seed, "an integer seed")?,
                run_info.parse(r, finetune, "an integer seed")?,
            ))
        })
        .collect::<Result<Vec<(i64, i64)>>>()?;
    for (i, run) in runs.iter().enumerate() {
        if let Some(first) = runs[..i].iter().position(|r| r == run) {
            return Err(input(format!(
                "{}: rows {} and {} are both pretrain_seed {}, finetune_seed {}; each run must be listed once",
                dir.join("run_info.tsv").display(),
                first + 1,
                i + 1,
                run.0,
                run.1
            )));
        }
    }
    let labels_path = dir.join("label_info.tsv");
    let labels = Tsv::read(&labels_path)?;
    let [answer, gender, occupation, template] =
        ["answer", "gender", "occupation", "template_idx"].map(|c| labels.column(c));
    let (answer, gender, occupation, template) = (answer?, gender?, occupation?, template?);
    let preds_path = dir.join("preds.tsv");
    let matrix = read_matrix(&preds_path)?;
    if matrix.len() != runs.len() {
        return Err(input(format!(
            "{}: {} rows of predictions, but run_info.tsv lists {} runs",
            preds_path.display(),
            matrix.len(),
            runs.len()
        )));
    }
    if matrix[0].len() != labels.len() {
        return Err(input(format!(
            "{}: {} examples per run, but {} has {} rows",
            preds_path.display(),
            matrix[0].len(),
            labels_path.display(),
            labels.len()
        )));
    }
    let preds = matrix
        .iter()
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(
                    |(e, &v)| match class(v, &preds_path, &format!("run {r}, example {e}"))? {
                        p @ (0 | 1) => Ok(p),
                        p => Err(input(format!(
                            "{}: run {r}, example {e}: {p} is not 0 or 1",
                            preds_path.display()
                        ))),
                    },
                )
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let texts = |c: usize| {
        (0..labels.len())
            .map(|r| labels.text(r, c).to_string())
            .collect::<Vec<_>>()
    };
    Ok(Group {
        name,
        runs,
        preds,
        answer: (0..labels.len())
            .map(|r| labels.parse_where(r, answer, "0 or 1", |&v: &i64| v == 0 || v == 1))
            .collect::<Result<_>>()?,
        gender: texts(gender),
        occupation: texts(occupation),
        template: texts(template),
    })
}

/// Group folders must be distinct folders with distinct names (the name is the group).
fn check_distinct(dirs: &[PathBuf]) -> Result<()> {
    for (i, dir) in dirs.iter().enumerate() {
        let twice = dirs[..i]
            .iter()
            .find(|d| mb_stats_files::output::same_file(d, dir) || d.file_name() == dir.file_name());
        if let Some(first) = twice {
            return Err(input(format!(
                "{}: the same group as {} (a group folder may be given once, and group names must differ)",
                dir.display(),
                first.display()
            )));
        }
    }
    Ok(())
}

/// Per-example rows: group (folder name), seed, run (fine-tuning seed), example (row of
/// `label_info.tsv`), label (`answer`), prediction, cluster (template).
pub fn import(dirs: &[PathBuf]) -> Result<ResultsTable> {
    check_distinct(dirs)?;
    let mut t = Rows::default();
    for dir in dirs {
        let g = read_group(dir)?;
        for (r, &(seed, run)) in g.runs.iter().enumerate() {
            for e in 0..g.answer.len() {
                t.push(
                    &g.name,
                    seed,
                    run,
                    e as i64,
                    g.answer[e] as f64,
                    g.preds[r][e] as f64,
                    Some(&g.template[e]),
                );
            }
        }
    }
    Ok(t.finish(TASK, ExampleKind::Index))
}

/// The bias table of the paper: per run and occupation, the bias score P(prediction is the
/// occupation | female pronoun) − P(… | male pronoun) as `prediction`, the occupation as
/// `example`, and its share of women (`bls_pct_female` of `occupations`) as `label`, so that
/// `--metric pearson` gives the bias correlation.
pub fn import_bias(dirs: &[PathBuf], occupations: &Path) -> Result<ResultsTable> {
    check_distinct(dirs)?;
    let stats = Tsv::read(occupations)?;
    let (name, pct) = (stats.column("occupation")?, stats.column("bls_pct_female")?);
    let share: BTreeMap<String, f64> = (0..stats.len())
        .map(|r| Ok((stats.text(r, name).to_string(), stats.parse(r, pct, "a percentage")?)))
        .collect::<Result<_>>()?;
    let mut t = Rows::default();
    for dir in dirs {
        let g = read_group(dir)?;
        let mut by_occupation: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for e in 0..g.answer.len() {
            let entry = by_occupation.entry(&g.occupation[e]).or_default();
            match g.gender[e].as_str() {
                "FEMININE" => entry.0.push(e),
                "MASCULINE" => entry.1.push(e),
                _ => {}
            }
        }
        let mut checked = Vec::new();
        for (occupation, (female, male)) in &by_occupation {
            let label = *share.get(*occupation).ok_or_else(|| {
                input(format!(
                    "{}: no row for occupation '{occupation}' of {}",
                    occupations.display(),
                    dir.display()
                ))
            })?;
            if female.is_empty() || male.is_empty() {
                return Err(input(format!(
                    "{}: occupation '{occupation}' needs FEMININE and MASCULINE examples for a bias score",
                    dir.join("label_info.tsv").display()
                )));
            }
            checked.push((occupation, female, male, label));
        }
        for (r, &(seed, run)) in g.runs.iter().enumerate() {
            let p_occupation = |examples: &[usize]| {
                examples.iter().filter(|&&e| g.preds[r][e] == 0).count() as f64 / examples.len() as f64
            };
            for (occupation, female, male, label) in &checked {
                t.push_bias(
                    &g.name,
                    seed,
                    run,
                    occupation,
                    *label,
                    p_occupation(female) - p_occupation(male),
                );
            }
        }
    }
    Ok(t.finish(BIAS_TASK, ExampleKind::Name))
}

enum ExampleKind {
    Index,
    Name,
}

#[derive(Default)]
struct Rows {
    group: Vec<String>,
    seed: Vec<i64>,
    run: Vec<Option<i64>>,
    index: Vec<i64>,
    name: Vec<String>,
    label: Vec<f64>,
    prediction: Vec<f64>,
    cluster: Vec<Option<String>>,
}

impl Rows {
    /// Appends one row. (One argument per column: a row struct would only repeat the columns.)
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        group: &str,
        seed: i64,
        run: i64,
        example: i64,
        label: f64,
        prediction: f64,
        cluster: Option<&String>,
    ) {
        self.group.push(group.to_string());
        self.seed.push(seed);
        self.run.push(Some(run));
        self.index.push(example);
        self.label.push(label);
        self.prediction.push(prediction);
        self.cluster.push(cluster.cloned());
    }

    fn push_bias(&mut self, group: &str, seed: i64, run: i64, occupation: &str, label: f64, bias: f64) {
        self.push(group, seed, run, 0, label, bias, None);
        self.name.push(occupation.to_string());
    }

    fn finish(self, task: &str, kind: ExampleKind) -> ResultsTable {
        let n = self.seed.len();
        let (example, label, prediction, cluster) = match kind {
            ExampleKind::Index => (
                ExampleIds::Int(self.index),
                Numbers::Int(self.label.iter().map(|&v| Some(v as i64)).collect()),
                Numbers::Int(self.prediction.iter().map(|&v| Some(v as i64)).collect()),
                Some(self.cluster),
            ),
            ExampleKind::Name => (
                ExampleIds::Text(self.name),
                Numbers::Float(self.label.into_iter().map(Some).collect()),
                Numbers::Float(self.prediction.into_iter().map(Some).collect()),
                None,
            ),
        };
        ResultsTable {
            group: self.group.into(),
            seed: self.seed,
            step: None,
            run: Some(self.run),
            task: Some(Texts::repeat(Some(task), n)),
            layer: None,
            example,
            label: Some(label),
            prediction: Some(prediction),
            score: None,
            cluster: cluster.map(|c| c.into_iter().collect()),
            extra: Vec::new(),
            metadata: vec![(footer::IMPORT.into(), format!("coref ({task})"))],
        }
    }
}
