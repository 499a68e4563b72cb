//! The results table (schema v1 of DESIGN.md): one row per (run, example), the contract between
//! the half that evaluates models and the half that analyses them. [`ResultsTable`] holds the
//! columns as plain vectors; [`parquet`] reads and writes them with polars.

pub mod filter;
pub mod footer;
pub mod parquet;
pub mod texts;

pub use texts::Texts;

/// The schema version written to and expected in the footer (`mb_stats.schema`).
pub const SCHEMA_VERSION: &str = "1";

/// The columns of schema v1; other numeric columns are read as [`ResultsTable::extra`].
pub const COLUMNS: [&str; 11] = [
    "group",
    "seed",
    "step",
    "run",
    "task",
    "layer",
    "example",
    "label",
    "prediction",
    "score",
    "cluster",
];

/// An integer-or-float column (labels and predictions may be either).
#[derive(Clone, Debug, PartialEq)]
pub enum Numbers {
    /// Integer values (class ids).
    Int(Vec<Option<i64>>),
    /// Float values (regression targets, scores).
    Float(Vec<Option<f64>>),
}

impl Numbers {
    /// The value of row `i` as f64 (`None` for null).
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            Numbers::Int(v) => v[i].map(|x| x as f64),
            Numbers::Float(v) => v[i],
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Numbers::Int(v) => v.len(),
            Numbers::Float(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Example ids: text or integers. The same id in two runs is the same example.
#[derive(Clone, Debug, PartialEq)]
pub enum ExampleIds {
    /// Integer ids.
    Int(Vec<i64>),
    /// Text ids.
    Text(Vec<String>),
}

/// The results table in memory: required columns as vectors, optional ones as `Option`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultsTable {
    /// The procedure (arm); never null.
    pub group: Texts,
    /// Pretraining seed: the unit resampled at the seed level.
    pub seed: Vec<i64>,
    /// Pretraining step of the checkpoint (null = final/unknown).
    pub step: Option<Vec<Option<i64>>>,
    /// Repeat within one checkpoint (null or absent = 0).
    pub run: Option<Vec<Option<i64>>>,
    /// Task name.
    pub task: Option<Texts>,
    /// Layer probed (0 = embeddings output).
    pub layer: Option<Vec<Option<i64>>>,
    /// Example id.
    pub example: ExampleIds,
    /// Gold label or target.
    pub label: Option<Numbers>,
    /// Predicted class or value.
    pub prediction: Option<Numbers>,
    /// Per-example score.
    pub score: Option<Vec<Option<f64>>>,
    /// Examples with the same cluster are resampled together.
    pub cluster: Option<Texts>,
    /// Additional float columns beyond schema v1 (e.g. the fine-tuning learning rate `lr`):
    /// written after the schema columns, ignored by the analysis and not read back.
    pub extra: Vec<(String, Vec<Option<f64>>)>,
    /// Footer key/value metadata (`mb_stats.schema`, tool version, experiment, ...).
    pub metadata: Vec<(String, String)>,
}

impl ResultsTable {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.seed.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.seed.is_empty()
    }

    /// The table restricted to `rows` (in that order), metadata kept.
    pub fn select(&self, rows: &[usize]) -> ResultsTable {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&i| v[i].clone()).collect()
        }
        let numbers = |n: &Numbers| match n {
            Numbers::Int(v) => Numbers::Int(pick(v, rows)),
            Numbers::Float(v) => Numbers::Float(pick(v, rows)),
        };
        ResultsTable {
            group: self.group.select(rows),
            seed: pick(&self.seed, rows),
            step: self.step.as_deref().map(|v| pick(v, rows)),
            run: self.run.as_deref().map(|v| pick(v, rows)),
            task: self.task.as_ref().map(|v| v.select(rows)),
            layer: self.layer.as_deref().map(|v| pick(v, rows)),
            example: match &self.example {
                ExampleIds::Int(v) => ExampleIds::Int(pick(v, rows)),
                ExampleIds::Text(v) => ExampleIds::Text(pick(v, rows)),
            },
            label: self.label.as_ref().map(numbers),
            prediction: self.prediction.as_ref().map(numbers),
            score: self.score.as_deref().map(|v| pick(v, rows)),
            cluster: self.cluster.as_ref().map(|v| v.select(rows)),
            extra: self
                .extra
                .iter()
                .map(|(name, v)| (name.clone(), pick(v, rows)))
                .collect(),
            metadata: self.metadata.clone(),
        }
    }

    /// The rows of all `tables` in order. An optional column present in some tables is null in
    /// the others, and so is an `extra` column (cloze's `rank`); integer and float labels mixed
    /// become floats; metadata is dropped (the caller writes its own). Time: O(rows).
    pub fn concat(tables: &[ResultsTable]) -> ResultsTable {
        fn optional<T: Clone>(
            tables: &[ResultsTable],
            get: impl Fn(&ResultsTable) -> Option<&Vec<Option<T>>>,
        ) -> Option<Vec<Option<T>>> {
            tables.iter().any(|t| get(t).is_some()).then(|| {
                tables
                    .iter()
                    .flat_map(|t| get(t).cloned().unwrap_or_else(|| vec![None; t.len()]))
                    .collect()
            })
        }
        fn numbers(tables: &[ResultsTable], get: impl Fn(&ResultsTable) -> Option<&Numbers>) -> Option<Numbers> {
            if tables.iter().all(|t| get(t).is_none()) {
                return None;
            }
            if tables.iter().all(|t| matches!(get(t), Some(Numbers::Int(_)) | None)) {
                let ints = tables.iter().flat_map(|t| match get(t) {
                    Some(Numbers::Int(v)) => v.clone(),
                    _ => vec![None; t.len()],
                });
                return Some(Numbers::Int(ints.collect()));
            }
            let get = &get;
            let floats = tables
                .iter()
                .flat_map(|t| (0..t.len()).map(move |i| get(t).and_then(|n| n.get(i))));
            Some(Numbers::Float(floats.collect()))
        }
        let example = if tables.iter().all(|t| matches!(t.example, ExampleIds::Int(_))) {
            ExampleIds::Int(
                tables
                    .iter()
                    .flat_map(|t| match &t.example {
                        ExampleIds::Int(v) => v.clone(),
                        ExampleIds::Text(_) => unreachable!(),
                    })
                    .collect(),
            )
        } else {
            ExampleIds::Text(
                tables
                    .iter()
                    .flat_map(|t| match &t.example {
                        ExampleIds::Int(v) => v.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                        ExampleIds::Text(v) => v.clone(),
                    })
                    .collect(),
            )
        };
        fn texts(tables: &[ResultsTable], get: impl Fn(&ResultsTable) -> Option<&Texts>) -> Option<Texts> {
            tables.iter().any(|t| get(t).is_some()).then(|| {
                let mut all = Texts::with_capacity(tables.iter().map(ResultsTable::len).sum());
                for t in tables {
                    match get(t) {
                        Some(v) => all.extend_from(v),
                        None => all.extend_from(&Texts::repeat(None, t.len())),
                    }
                }
                all
            })
        }
        ResultsTable {
            group: texts(tables, |t| Some(&t.group)).unwrap_or_default(),
            seed: tables.iter().flat_map(|t| t.seed.clone()).collect(),
            step: optional(tables, |t| t.step.as_ref()),
            run: optional(tables, |t| t.run.as_ref()),
            task: texts(tables, |t| t.task.as_ref()),
            layer: optional(tables, |t| t.layer.as_ref()),
            example,
            label: numbers(tables, |t| t.label.as_ref()),
            prediction: numbers(tables, |t| t.prediction.as_ref()),
            score: optional(tables, |t| t.score.as_ref()),
            cluster: texts(tables, |t| t.cluster.as_ref()),
            extra: {
                let mut names: Vec<&String> = Vec::new();
                for (name, _) in tables.iter().flat_map(|t| &t.extra) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                names
                    .into_iter()
                    .map(|name| {
                        let values = tables
                            .iter()
                            .flat_map(|t| match t.extra.iter().find(|(n, _)| n == name) {
                                Some((_, v)) => v.clone(),
                                None => vec![None; t.len()],
                            })
                            .collect();
                        (name.clone(), values)
                    })
                    .collect()
            },
            metadata: Vec::new(),
        }
    }

    /// Checks that every present column has one value per row.
    pub fn check_lengths(&self) -> Result<(), String> {
        let n = self.len();
        let example_len = match &self.example {
            ExampleIds::Int(v) => v.len(),
            ExampleIds::Text(v) => v.len(),
        };
        let lengths = [
            ("group", Some(self.group.len())),
            ("example", Some(example_len)),
            ("step", self.step.as_ref().map(Vec::len)),
            ("run", self.run.as_ref().map(Vec::len)),
            ("task", self.task.as_ref().map(Texts::len)),
            ("layer", self.layer.as_ref().map(Vec::len)),
            ("label", self.label.as_ref().map(Numbers::len)),
            ("prediction", self.prediction.as_ref().map(Numbers::len)),
            ("score", self.score.as_ref().map(Vec::len)),
            ("cluster", self.cluster.as_ref().map(Texts::len)),
        ];
        if let Some((name, v)) = self.extra.iter().find(|(_, v)| v.len() != n) {
            return Err(format!("column {name} has {} values for {n} rows", v.len()));
        }
        match lengths.iter().find(|(_, len)| len.is_some_and(|l| l != n)) {
            Some((name, len)) => Err(format!("column {name} has {} values for {n} rows", len.unwrap_or(0))),
            None => Ok(()),
        }
    }
}
