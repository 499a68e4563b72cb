//! The labelled data of the kinds that train (linear probe, fine-tuning): their `[data]` table,
//! and the texts, class labels (or numeric targets, for a regression head) and example ids of the
//! training and evaluation files, and the training subset of each run.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::Deserialize;

use super::TaskSource;
use crate::dataset::TextTable;
use crate::digest::Digest;
use mb_stats_analysis::results::ExampleIds;
use mb_stats_bert::hub;
use mb_stats_bert::tokenizer::TextInput;
use mb_stats_core::resample::uniform_below;
use mb_stats_files::error::{Result, input};

/// `[data]` of a kind that trains on labelled texts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledDataSpec {
    /// Training file: a path, or `hf://datasets/OWNER/NAME/FILE` (a `*` in FILE allowed).
    pub train: String,
    /// Evaluation file, same forms.
    pub eval: String,
    /// Column with the text.
    #[serde(default = "default_text")]
    pub text: String,
    /// Column with the second text of pairs.
    #[serde(default)]
    pub text_pair: Option<String>,
    /// Column with the label.
    #[serde(default = "default_label")]
    pub label: String,
    /// Column with example ids in the evaluation file (default: the row number).
    #[serde(default)]
    pub id: Option<String>,
    /// Train each run on this many training examples, a different random subset per run.
    #[serde(default)]
    pub train_size: Option<usize>,
    /// Evaluate on the first this-many evaluation examples.
    #[serde(default)]
    pub eval_size: Option<usize>,
}

fn default_text() -> String {
    "sentence".into()
}
fn default_label() -> String {
    "label".into()
}

impl LabelledDataSpec {
    /// Refuses an empty training or evaluation size.
    pub fn check(&self, source: &TaskSource) -> Result<()> {
        if self.train_size == Some(0) || self.eval_size == Some(0) {
            return Err(source.bad("data.train_size / data.eval_size", "expected a positive number"));
        }
        Ok(())
    }
}

/// One split: inputs and class indices.
#[derive(Debug, Clone)]
pub struct Split {
    /// Texts (and pairs).
    pub inputs: Vec<TextInput>,
    /// Class index of each input (into [`LabelledData::classes`]).
    pub classes: Vec<usize>,
}

/// Training and evaluation data with one class numbering.
#[derive(Debug, Clone)]
pub struct LabelledData {
    /// Training split.
    pub train: Split,
    /// Evaluation split.
    pub eval: Split,
    /// Example ids of the evaluation split.
    pub eval_ids: ExampleIds,
    /// The label value of each class, sorted (numerically when every label is an integer).
    pub classes: Vec<String>,
    /// Integer value of each class when every label is an integer.
    pub class_values: Option<Vec<i64>>,
}

/// Training and evaluation data with numeric targets (a regression head).
#[derive(Debug, Clone)]
pub struct ValuedData {
    /// Training inputs.
    pub train: Vec<TextInput>,
    /// Target of each training input.
    pub train_values: Vec<f64>,
    /// Evaluation inputs.
    pub eval: Vec<TextInput>,
    /// Target of each evaluation input.
    pub eval_values: Vec<f64>,
    /// Example ids of the evaluation split.
    pub eval_ids: ExampleIds,
}

impl ValuedData {
    /// Read the files of `data`; every label must be a finite number.
    pub fn load(source: &TaskSource, data: &LabelledDataSpec) -> Result<Self> {
        let (train_table, eval_table) = read_tables(source, data)?;
        let values = |table: &TextTable| -> Result<Vec<f64>> {
            table
                .column(&data.label)?
                .iter()
                .enumerate()
                .map(|(row, label)| match label.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(input(format!(
                        "{}: row {}: label {label:?} in column {:?} is not a number (task.head = \"regression\" needs numeric labels)",
                        table.source().display(),
                        row + 1,
                        data.label
                    ))),
                })
                .collect()
        };
        Ok(ValuedData {
            train: train_table.inputs(Some(&data.text), data.text_pair.as_deref())?,
            train_values: values(&train_table)?,
            eval: eval_table.inputs(Some(&data.text), data.text_pair.as_deref())?,
            eval_values: values(&eval_table)?,
            eval_ids: eval_ids(data, &eval_table)?,
        })
    }
}

/// The training and evaluation tables of `data` (`eval_size` applied), each checked non-empty.
fn read_tables(source: &TaskSource, data: &LabelledDataSpec) -> Result<(TextTable, TextTable)> {
    let read = |spec: &str| -> Result<TextTable> {
        match spec.strip_prefix("hf://datasets/") {
            Some(rest) => TextTable::read(&hub::dataset_file(rest, source.offline)?),
            None => TextTable::read(&source.resolve(spec)),
        }
    };
    let train_table = read(&data.train)?;
    let mut eval_table = read(&data.eval)?;
    if let Some(n) = data.eval_size {
        eval_table.truncate(n);
    }
    for (table, what) in [(&train_table, "data.train"), (&eval_table, "data.eval")] {
        if table.is_empty() {
            return Err(input(format!("{}: {what}: no rows", table.source().display())));
        }
    }
    Ok((train_table, eval_table))
}

/// The evaluation examples' ids: `[data] id`'s column (integers when every id is one), else
/// the row numbers.
fn eval_ids(data: &LabelledDataSpec, eval_table: &TextTable) -> Result<ExampleIds> {
    Ok(match &data.id {
        None => ExampleIds::Int((0..eval_table.len() as i64).collect()),
        Some(column) => {
            let ids = eval_table.column(column)?;
            // Ids must name examples: a repeated id (data.id = "label") is refused here, before
            // any checkpoint runs, not by the analysis after all of them.
            let mut seen = std::collections::HashMap::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                if let Some(first) = seen.insert(id.trim(), i) {
                    return Err(input(format!(
                        "{}: row {}: example id {id:?} again (first at row {}); ids must be unique (column {column:?} of data.id)",
                        eval_table.source().display(),
                        i + 1,
                        first + 1
                    )));
                }
            }
            match ids
                .iter()
                .map(|s| s.trim().parse::<i64>())
                .collect::<std::result::Result<Vec<_>, _>>()
            {
                Ok(ints) => ExampleIds::Int(ints),
                Err(_) => ExampleIds::Text(ids.to_vec()),
            }
        }
    })
}

impl LabelledData {
    /// Read and check the files of `data`.
    pub fn load(source: &TaskSource, data: &LabelledDataSpec) -> Result<Self> {
        let (train_table, eval_table) = read_tables(source, data)?;
        let train_labels = train_table.column(&data.label)?;
        let eval_labels = eval_table.column(&data.label)?;
        let (classes, class_values) = class_list(train_labels);
        if classes.len() < 2 {
            return Err(input(format!(
                "{}: column {:?}: one class only; a probe needs at least two",
                train_table.source().display(),
                data.label
            )));
        }
        let index = |labels: &[String], table: &TextTable| -> Result<Vec<usize>> {
            labels
                .iter()
                .enumerate()
                .map(|(row, label)| {
                    classes.iter().position(|c| c == label.trim()).ok_or_else(|| {
                        input(format!(
                            "{}: row {}: label {label:?} is not among the training labels ({})",
                            table.source().display(),
                            row + 1,
                            classes.join(", ")
                        ))
                    })
                })
                .collect()
        };
        let split = |table: &TextTable, labels: &[String]| -> Result<Split> {
            let inputs = table.inputs(Some(&data.text), data.text_pair.as_deref())?;
            Ok(Split {
                inputs,
                classes: index(labels, table)?,
            })
        };
        let train = split(&train_table, train_labels)?;
        let eval = split(&eval_table, eval_labels)?;
        let eval_ids = eval_ids(data, &eval_table)?;
        Ok(LabelledData {
            train,
            eval,
            eval_ids,
            classes,
            class_values,
        })
    }

    /// A digest of the data as loaded: every input text (and pair), class and example id.
    /// Time: one pass over the texts.
    pub fn digest(&self) -> String {
        let mut h = Digest::default();
        h.field(&self.classes.join("\u{1f}"));
        for split in [&self.train, &self.eval] {
            h.field(&split.inputs.len().to_string());
            for (input, class) in split.inputs.iter().zip(&split.classes) {
                h.field(&input.text);
                match &input.pair {
                    Some(pair) => h.field(&format!("pair:{pair}")),
                    None => h.field("single"),
                }
                h.field(&class.to_string());
            }
        }
        h.ids(&self.eval_ids);
        h.finish()
    }

    /// Training rows of probe run `run` (see [`train_subset`]).
    pub fn train_subset(&self, run: usize, size: Option<usize>) -> Vec<usize> {
        train_subset(self.train.inputs.len(), run, size)
    }
}

/// Training rows of run `run` among `n`: all rows, or a random subset of `size` drawn with the
/// run number as seed, the same for every checkpoint (so runs are paired across seeds).
pub fn train_subset(n: usize, run: usize, size: Option<usize>) -> Vec<usize> {
    let size = size.unwrap_or(n).min(n);
    let mut rows: Vec<usize> = (0..n).collect();
    if size == n {
        return rows;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(run as u64);
    // Partial Fisher–Yates: the first `size` rows become a uniform random subset.
    for i in 0..size {
        let j = i + uniform_below(&mut rng, (n - i) as u64) as usize;
        rows.swap(i, j);
    }
    rows.truncate(size);
    rows.sort_unstable();
    rows
}

/// The distinct labels, sorted numerically when all are integers, else as text.
fn class_list(labels: &[String]) -> (Vec<String>, Option<Vec<i64>>) {
    let mut distinct: Vec<String> = labels.iter().map(|l| l.trim().to_string()).collect();
    distinct.sort();
    distinct.dedup();
    match distinct
        .iter()
        .map(|l| l.parse::<i64>())
        .collect::<std::result::Result<Vec<_>, _>>()
    {
        Ok(mut values) => {
            values.sort_unstable();
            (values.iter().map(|v| v.to_string()).collect(), Some(values))
        }
        Err(_) => (distinct, None),
    }
}
