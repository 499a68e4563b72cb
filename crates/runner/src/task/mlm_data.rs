//! The data of the masked-LM tasks, read from `[data] eval`: minimal pairs ([`Pairs`]) and cloze
//! prompts ([`Prompts`]). The source is a file, a folder of files (BLiMP's one JSONL per
//! paradigm), or Hub files (`hf://datasets/nyu-mll/blimp/*/train-*.parquet`); every row remembers
//! its file and row for messages.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Saved, TaskSource, UnitRows};
use crate::dataset::TextTable;
use crate::digest::Digest;
use crate::progress::Board;
use mb_stats_analysis::results::{ExampleIds, Numbers};
use mb_stats_bert::mlm::MaskedQuery;
use mb_stats_bert::tokenizer::WordPieces;
use mb_stats_bert::{Bert, hub};
use mb_stats_files::error::{Result, input};

/// `[data]` of minimal pairs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsSpec {
    /// A file, a folder of files or a Hub glob matching many
    /// (`hf://datasets/nyu-mll/blimp/*/train-*.parquet`).
    pub eval: String,
    /// The column with the acceptable sentence.
    #[serde(default = "default_good")]
    pub good: String,
    /// The column with the unacceptable sentence.
    #[serde(default = "default_bad")]
    pub bad: String,
    /// The column written to the results' `task` column (default: BLiMP's `UID` when the file
    /// has it, else the file's or the task's name).
    #[serde(default)]
    pub subtask: Option<String>,
    /// The column with example ids (default: BLiMP's `pairID` within its paradigm, else the row).
    #[serde(default)]
    pub id: Option<String>,
    /// Evaluate on the first this-many rows.
    #[serde(default)]
    pub eval_size: Option<usize>,
}

fn default_good() -> String {
    "sentence_good".into()
}
fn default_bad() -> String {
    "sentence_bad".into()
}

/// `[data]` of cloze prompts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsSpec {
    /// A file, a folder of files or a Hub glob.
    pub eval: String,
    /// The column with the prompt.
    #[serde(default = "default_text")]
    pub text: String,
    /// The column with the gold token.
    #[serde(default = "default_target")]
    pub target: String,
    /// A column of `|`-separated candidate tokens the choice is restricted to.
    #[serde(default)]
    pub candidates: Option<String>,
    /// As [`PairsSpec::subtask`].
    #[serde(default)]
    pub subtask: Option<String>,
    /// As [`PairsSpec::id`].
    #[serde(default)]
    pub id: Option<String>,
    /// Evaluate on the first this-many rows.
    #[serde(default)]
    pub eval_size: Option<usize>,
}

fn default_text() -> String {
    "sentence".into()
}
fn default_target() -> String {
    "target".into()
}

/// The `[data]` keys both masked-LM kinds share: where the rows are and how they are named.
struct RowsSpec<'a> {
    subtask: &'a Option<String>,
    id: &'a Option<String>,
    eval_size: Option<usize>,
}

impl RowsSpec<'_> {
    fn check(&self, source: &TaskSource) -> Result<()> {
        match self.eval_size {
            Some(0) => Err(source.bad("data.eval_size", "expected a positive number")),
            _ => Ok(()),
        }
    }
}

impl PairsSpec {
    fn rows(&self) -> RowsSpec<'_> {
        RowsSpec {
            subtask: &self.subtask,
            id: &self.id,
            eval_size: self.eval_size,
        }
    }

    /// Refuses an empty evaluation size and a pair of one column.
    pub fn check(&self, source: &TaskSource) -> Result<()> {
        self.rows().check(source)?;
        if self.good == self.bad {
            return Err(input(format!(
                "{}: data.good and data.bad are both {:?}: every pair would be a tie",
                source.path.display(),
                self.good
            )));
        }
        Ok(())
    }
}

impl PromptsSpec {
    fn rows(&self) -> RowsSpec<'_> {
        RowsSpec {
            subtask: &self.subtask,
            id: &self.id,
            eval_size: self.eval_size,
        }
    }

    /// Refuses an empty evaluation size.
    pub fn check(&self, source: &TaskSource) -> Result<()> {
        self.rows().check(source)
    }
}

/// Where each row came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    files: Vec<PathBuf>,
    rows: Vec<(usize, usize)>,
}

impl Origin {
    /// `FILE: row N` of row `i` (N counts data rows from 1).
    pub fn describe(&self, i: usize) -> String {
        let (file, row) = self.rows[i];
        format!("{}: row {}", self.files[file].display(), row + 1)
    }
}

/// The rows common to both tasks: ids, subtasks and origins.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Example id of each row (unique).
    pub ids: ExampleIds,
    /// The value of each row's `task` column.
    pub subtasks: Vec<String>,
    /// Where each row came from.
    pub origin: Origin,
}

/// Minimal pairs: an acceptable and an unacceptable sentence per row.
#[derive(Debug, Clone)]
pub struct Pairs {
    /// The acceptable sentences.
    pub good: Vec<String>,
    /// The unacceptable sentences.
    pub bad: Vec<String>,
    /// The columns they came from, naming them in messages.
    pub columns: [String; 2],
    /// Ids, subtasks (paradigms) and origins.
    pub rows: Rows,
    /// BLiMP's `field` (syntax, morphology, …) of each paradigm, when the data has that column.
    pub fields: BTreeMap<String, String>,
}

/// Cloze prompts: a text with one `[MASK]` and its gold token per row.
#[derive(Debug, Clone)]
pub struct Prompts {
    /// The prompts, each with exactly one `[MASK]`.
    pub texts: Vec<String>,
    /// The gold token of each prompt.
    pub targets: Vec<String>,
    /// The candidates each prompt's choice is restricted to, when `[data] candidates` is set.
    pub candidates: Option<Vec<Vec<String>>>,
    /// Ids, subtasks and origins.
    pub rows: Rows,
}

/// The literal mask token in prompts.
pub const MASK: &str = "[MASK]";

/// Refuses a checkpoint without the masked-LM head (a plain `BertModel`), naming it and `kind`.
pub fn require_head(bert: &Bert, name: &str, kind: &str) -> Result<()> {
    match bert.has_mlm_head() {
        true => Ok(()),
        false => Err(input(format!(
            "{name}: the checkpoint has no masked-LM head (cls.predictions weights); {kind} needs a BertForMaskedLM or BertForPreTraining checkpoint"
        ))),
    }
}

/// Pairs per block of masked copies held in memory at once.
const BLOCK_PAIRS: usize = 2048;

impl Pairs {
    /// The word-pieces of every sentence (pair `i`: first sentence at `2i`, second at `2i + 1`);
    /// refuses an empty or truncated one, naming its row and column and the experiment file
    /// `source`.
    pub fn pieces(&self, bert: &Bert, name: &str, source: &str) -> Result<Vec<WordPieces>> {
        let texts: Vec<&str> = self
            .good
            .iter()
            .zip(&self.bad)
            .flat_map(|(g, b)| [g.as_str(), b.as_str()])
            .collect();
        let pieces = bert.tokenizer().encode_words(&texts)?;
        for (k, p) in pieces.iter().enumerate() {
            let (row, which) = (k / 2, &self.columns[k % 2]);
            let at = self.rows.origin.describe(row);
            if p.truncated {
                return Err(input(format!(
                    "{at}: {which} is longer than {} tokens under {name}'s tokenizer, and the PLL of a truncated sentence is wrong; raise runtime.max_length in {source} (the model allows {}) or remove the row",
                    bert.tokenizer().max_length(),
                    bert.model().config().max_position_embeddings
                )));
            }
            if p.words.iter().all(Option::is_none) {
                return Err(input(format!("{at}: {which} has no tokens")));
            }
        }
        Ok(pieces)
    }

    /// The rows of the pairs given each sentence's `scores` (pair `i` at `2i` and `2i + 1`): `label`
    /// 1, `prediction` 1 when the first sentence scores higher (a tie is 0), `score` the
    /// difference, the subtask as `task`, `metadata` in the footer; the headline is the share of
    /// pairs whose first sentence wins.
    pub fn rows(&self, scores: &[f64], metadata: Vec<(String, String)>) -> UnitRows {
        let n = self.rows.len();
        let prediction: Vec<Option<i64>> = (0..n)
            .map(|i| Some(i64::from(scores[2 * i] > scores[2 * i + 1])))
            .collect();
        let first_wins = prediction.iter().flatten().sum::<i64>();
        UnitRows {
            example: self.rows.ids.clone(),
            label: Numbers::Int(vec![Some(1); n]),
            prediction: Numbers::Int(prediction),
            score: Some((0..n).map(|i| Some(scores[2 * i] - scores[2 * i + 1])).collect()),
            cluster: None,
            extra: Vec::new(),
            subtask: Some(self.rows.subtasks.clone()),
            metadata,
            headline: first_wins as f64 / n as f64,
            saved: Saved::Nothing,
        }
    }

    /// Each sentence's score: the sum of the log-probabilities its masked copies (`queries` of
    /// sentence `k`) read, computed in blocks of pairs so that memory stays bounded; a score that
    /// is not finite is refused, naming its pair and column.
    pub fn sentence_scores(
        &self,
        bert: &Bert,
        pieces: &[WordPieces],
        queries: &dyn Fn(usize) -> Vec<MaskedQuery>,
        batch_tokens: usize,
        name: &str,
        board: &Board,
    ) -> Result<Vec<f64>> {
        let tokens: Vec<_> = pieces.iter().map(|p| p.tokens.clone()).collect();
        let blocks: Vec<Vec<MaskedQuery>> = (0..pieces.len())
            .step_by(2 * BLOCK_PAIRS)
            .map(|block| {
                (block..(block + 2 * BLOCK_PAIRS).min(pieces.len()))
                    .flat_map(queries)
                    .collect()
            })
            .collect();
        let counter = board.counter(blocks.iter().map(Vec::len).sum(), "masked sentences");
        let mut sums = vec![0f64; pieces.len()];
        for block in &blocks {
            let scores = bert.score_masked(&tokens, block, batch_tokens, &counter.advance())?;
            for (query, score) in block.iter().zip(scores) {
                sums[query.text] += score.log_probs[0];
            }
        }
        board.remove(counter);
        if let Some(k) = sums.iter().position(|p| !p.is_finite()) {
            return Err(input(format!(
                "{name}: the score of {} of pair {} is {}; nothing is scored",
                self.columns[k % 2],
                match &self.rows.ids {
                    ExampleIds::Int(ids) => ids[k / 2].to_string(),
                    ExampleIds::Text(ids) => ids[k / 2].clone(),
                },
                sums[k]
            )));
        }
        Ok(sums)
    }

    /// Read and check the pairs of `data`.
    pub fn load(source: &TaskSource, data: &PairsSpec) -> Result<Self> {
        let tables = read_tables(source, "data.eval", &data.eval)?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut fields = BTreeMap::new();
        for table in &tables {
            good.extend(table.text_cells(&data.good)?.iter().cloned());
            bad.extend(table.text_cells(&data.bad)?.iter().cloned());
        }
        let rows = Rows::collect(source, &data.rows(), &tables, good.len())?;
        good.truncate(rows.subtasks.len());
        bad.truncate(rows.subtasks.len());
        for (i, (g, b)) in good.iter().zip(&bad).enumerate() {
            for (sentence, column) in [(g, &data.good), (b, &data.bad)] {
                if sentence.trim().is_empty() {
                    return Err(input(format!("{}: {column} is empty", rows.origin.describe(i))));
                }
            }
            if g.trim() == b.trim() {
                return Err(input(format!(
                    "{}: {} and {} are the same sentence: the pair would be a tie",
                    rows.origin.describe(i),
                    data.good,
                    data.bad
                )));
            }
        }
        let mut at = 0;
        for table in &tables {
            if let Ok(column) = table.column("field") {
                for (i, field) in column.iter().enumerate().take(rows.subtasks.len().saturating_sub(at)) {
                    fields.insert(rows.subtasks[at + i].clone(), field.clone());
                }
            }
            at += table.len();
        }
        Ok(Pairs {
            good,
            bad,
            columns: [data.good.clone(), data.bad.clone()],
            rows,
            fields,
        })
    }

    /// A digest of the pairs as loaded.
    pub fn digest(&self) -> String {
        let mut h = Digest::default();
        h.field("minimal-pairs");
        for (g, b) in self.good.iter().zip(&self.bad) {
            h.field(g);
            h.field(b);
        }
        self.rows.digest_into(&mut h);
        h.finish()
    }
}

impl Prompts {
    /// Read and check the prompts of `data`: each text has exactly one `[MASK]`.
    pub fn load(source: &TaskSource, data: &PromptsSpec) -> Result<Self> {
        let tables = read_tables(source, "data.eval", &data.eval)?;
        let mut texts = Vec::new();
        let mut targets = Vec::new();
        let mut candidates: Option<Vec<Vec<String>>> = data.candidates.as_ref().map(|_| Vec::new());
        for table in &tables {
            texts.extend(table.text_cells(&data.text)?.iter().cloned());
            targets.extend(table.column(&data.target)?.iter().map(|t| t.trim().to_string()));
            if let (Some(column), Some(all)) = (&data.candidates, candidates.as_mut()) {
                all.extend(
                    table
                        .column(column)?
                        .iter()
                        .map(|c| c.split('|').map(|t| t.trim().to_string()).collect()),
                );
            }
        }
        let rows = Rows::collect(source, &data.rows(), &tables, texts.len())?;
        let n = rows.subtasks.len();
        texts.truncate(n);
        targets.truncate(n);
        if let Some(all) = candidates.as_mut() {
            all.truncate(n);
        }
        for i in 0..n {
            let at = rows.origin.describe(i);
            match texts[i].matches(MASK).count() {
                1 => {}
                k => {
                    return Err(input(format!(
                        "{at}: {}: expected exactly one {MASK}, found {k}",
                        data.text
                    )));
                }
            }
            if targets[i].is_empty() {
                return Err(input(format!("{at}: {} is empty", data.target)));
            }
            if let Some(all) = &candidates {
                let column = data.candidates.as_deref().unwrap_or_default();
                if all[i].len() < 2 {
                    return Err(input(format!(
                        "{at}: {column}: expected at least two candidates separated by |"
                    )));
                }
                if let Some(k) = all[i].iter().position(String::is_empty) {
                    return Err(input(format!(
                        "{at}: {column}: candidate {} of {:?} is empty",
                        k + 1,
                        all[i].join("|")
                    )));
                }
                if let Some(k) = (1..all[i].len()).find(|&k| all[i][..k].contains(&all[i][k])) {
                    return Err(input(format!(
                        "{at}: {column}: {:?} is listed twice in {:?} (it would count twice)",
                        all[i][k],
                        all[i].join("|")
                    )));
                }
                if !all[i].contains(&targets[i]) {
                    return Err(input(format!(
                        "{at}: {}: {:?} is not among the candidates ({})",
                        data.target,
                        targets[i],
                        all[i].join("|")
                    )));
                }
            }
        }
        Ok(Prompts {
            texts,
            targets,
            candidates,
            rows,
        })
    }

    /// A digest of the prompts as loaded.
    pub fn digest(&self) -> String {
        let mut h = Digest::default();
        h.field("cloze");
        for (i, (text, target)) in self.texts.iter().zip(&self.targets).enumerate() {
            h.field(text);
            h.field(target);
            match &self.candidates {
                Some(all) => h.field(&all[i].join("|")),
                None => h.field("vocabulary"),
            }
        }
        self.rows.digest_into(&mut h);
        h.finish()
    }
}

impl Rows {
    /// Ids, subtasks and origins of the first `eval_size` of the `n` rows of `tables`.
    fn collect(source: &TaskSource, data: &RowsSpec, tables: &[TextTable], n: usize) -> Result<Self> {
        let keep = data.eval_size.unwrap_or(n).min(n);
        let mut origin = Origin::default();
        let mut subtasks = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        for (f, table) in tables.iter().enumerate() {
            origin.files.push(table.source().to_path_buf());
            let subtask: Vec<String> = match (data.subtask, table.column("UID")) {
                (Some(column), _) => table.column(column)?.to_vec(),
                (None, Ok(uid)) => uid.to_vec(),
                (None, Err(_)) if tables.len() > 1 => vec![stem(table.source()); table.len()],
                (None, Err(_)) => vec![source.name.clone(); table.len()],
            };
            let own_ids: Vec<String> = match (data.id, table.column("pairID")) {
                (Some(column), _) => table.column(column)?.to_vec(),
                (None, Ok(pair)) => subtask.iter().zip(pair).map(|(s, p)| format!("{s}/{p}")).collect(),
                (None, Err(_)) if tables.len() > 1 => (0..table.len())
                    .map(|r| format!("{}/{r}", stem(table.source())))
                    .collect(),
                (None, Err(_)) => (0..table.len()).map(|r| r.to_string()).collect(),
            };
            origin.rows.extend((0..table.len()).map(|r| (f, r)));
            subtasks.extend(subtask);
            ids.extend(own_ids);
        }
        origin.rows.truncate(keep);
        subtasks.truncate(keep);
        ids.truncate(keep);
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(keep);
        for (i, id) in ids.iter().enumerate() {
            if let Some(first) = seen.insert(id, i) {
                return Err(input(format!(
                    "{}: example id {id:?} again (first at {}); ids must be unique{}",
                    origin.describe(i),
                    origin.describe(first),
                    match data.id {
                        Some(column) => format!(" (column {column:?} of data.id)"),
                        None => String::new(),
                    }
                )));
            }
        }
        let ids = match ids
            .iter()
            .map(|s| s.trim().parse::<i64>())
            .collect::<std::result::Result<Vec<_>, _>>()
        {
            Ok(ints) => ExampleIds::Int(ints),
            Err(_) => ExampleIds::Text(ids),
        };
        Ok(Rows { ids, subtasks, origin })
    }

    fn digest_into(&self, h: &mut Digest) {
        self.subtasks.iter().for_each(|s| h.field(s));
        h.ids(&self.ids);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.subtasks.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.subtasks.is_empty()
    }
}

/// The file name without its extension.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The tables of `[data] eval`: Hub files matching a pattern, every data file of a folder (by
/// name), or one file. Refuses an empty source.
/// The tables of `spec` (a file, a folder of files, or `hf://datasets/…` Hub files), the
/// `[data]` setting `key` of `source`; refuses a source with no rows.
pub fn read_tables(source: &TaskSource, key: &str, spec: &str) -> Result<Vec<TextTable>> {
    let paths = match spec.strip_prefix("hf://datasets/") {
        Some(rest) => hub::dataset_files(rest, source.offline)?,
        None => {
            let path = source.resolve(spec);
            match path.is_dir() {
                true => folder_files(&path)?,
                false => vec![path],
            }
        }
    };
    let tables = paths.iter().map(|p| TextTable::read(p)).collect::<Result<Vec<_>>>()?;
    if tables.iter().all(TextTable::is_empty) {
        return Err(source.bad(key, format!("no rows in {spec}")));
    }
    Ok(tables)
}

/// The data files of a folder (`.jsonl`, `.tsv`, `.csv`, `.parquet`), sorted by name.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| input(format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| ["jsonl", "ndjson", "tsv", "csv", "parquet"].contains(&e))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(input(format!(
            "{}: no data files (.jsonl, .tsv, .csv or .parquet) in this folder",
            dir.display()
        )));
    }
    Ok(files)
}
