//! `kind = "minimal-pairs"`: which sentence of each pair the masked LM prefers. Each sentence is
//! scored by its pseudo-log-likelihood ([`PllScoring`]); a pair's row has `label` 1, `prediction`
//! 1 when PLL(good) > PLL(bad) else 0, and `score` PLL(good) − PLL(bad), so accuracy is the share
//! of pairs the model gets right. A sentence longer than the maximum length is refused (the PLL
//! of a truncated sentence is wrong), naming its row.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::mlm_data::{Pairs, PairsSpec, head_unit, require_head};
use super::{Task, TaskSource, Unit, UnitRows};
use crate::progress::Board;
use mb_stats_analysis::results::{ExampleIds, Numbers, footer};
use mb_stats_bert::Bert;
use mb_stats_bert::mlm::{PllScoring, pll_queries};
use mb_stats_bert::tokenizer::WordPieces;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

/// Pairs per block of masked copies held in memory at once.
const BLOCK_PAIRS: usize = 2048;

/// `[task]` of minimal pairs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinimalPairsSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    /// How a sentence is scored, `pll` or `pll-word-l2r`.
    #[serde(default)]
    pub scoring: PllScoring,
}

impl MinimalPairsSpec {
    /// The task's `[task]` and `[data]` of `source`, read and checked.
    pub fn read(source: &TaskSource) -> Result<(MinimalPairsSpec, PairsSpec)> {
        let (task, data): (MinimalPairsSpec, PairsSpec) = source.sections()?;
        data.check(source)?;
        Ok((task, data))
    }
}

/// The minimal-pairs task of an experiment, with its pairs.
pub struct MinimalPairs {
    pairs: Pairs,
    scoring: PllScoring,
    batch_tokens: usize,
    /// The experiment file, for messages.
    source: String,
}

impl MinimalPairs {
    /// The task of `source`, its pairs read and checked.
    pub fn new(source: &TaskSource) -> Result<Self> {
        let (task, data) = MinimalPairsSpec::read(source)?;
        Ok(MinimalPairs {
            pairs: Pairs::load(source, &data)?,
            scoring: task.scoring,
            batch_tokens: source.batch_tokens,
            source: source.path.display().to_string(),
        })
    }

    /// The word-pieces of every sentence (pair `i`: good at `2i`, bad at `2i + 1`); refuses an
    /// empty or truncated one, naming its row.
    fn tokenize(&self, bert: &Bert, name: &str) -> Result<Vec<WordPieces>> {
        let texts: Vec<&str> = self
            .pairs
            .good
            .iter()
            .zip(&self.pairs.bad)
            .flat_map(|(g, b)| [g.as_str(), b.as_str()])
            .collect();
        let pieces = bert.tokenizer().encode_words(&texts)?;
        for (k, p) in pieces.iter().enumerate() {
            let (row, which) = (k / 2, if k % 2 == 0 { "good" } else { "bad" });
            let at = self.pairs.rows.origin.describe(row);
            if p.truncated {
                return Err(input(format!(
                    "{at}: the {which} sentence is longer than {} tokens under {name}'s tokenizer, and the PLL of a truncated sentence is wrong; raise runtime.max_length in {} (the model allows {}) or remove the row",
                    bert.tokenizer().max_length(),
                    self.source,
                    bert.model().config().max_position_embeddings
                )));
            }
            if p.words.iter().all(Option::is_none) {
                return Err(input(format!("{at}: the {which} sentence has no tokens")));
            }
        }
        Ok(pieces)
    }
}

impl Task for MinimalPairs {
    fn kind(&self) -> &'static str {
        "minimal-pairs"
    }

    fn data_digest(&self) -> String {
        self.pairs.digest()
    }

    fn settings(&self) -> Vec<(&'static str, Value)> {
        vec![("task.scoring", json!(self.scoring.to_string()))]
    }

    fn units(&self, n_hidden_states: usize) -> Result<Vec<Unit>> {
        Ok(head_unit(n_hidden_states))
    }

    fn evaluate(
        &self,
        bert: &Bert,
        pending: &[Unit],
        name: &str,
        board: &Board,
        finished: &mut dyn FnMut(Unit, UnitRows) -> Result<()>,
    ) -> Result<()> {
        require_head(bert, name, "minimal-pairs")?;
        let pieces = self.tokenize(bert, name)?;
        let tokens: Vec<_> = pieces.iter().map(|p| p.tokens.clone()).collect();
        let total: usize = pieces.iter().map(|p| p.words.iter().flatten().count()).sum();
        let counter = board.counter(total, "masked sentences");
        let mut pll = vec![0f64; pieces.len()];
        for block in (0..pieces.len()).step_by(2 * BLOCK_PAIRS) {
            let end = (block + 2 * BLOCK_PAIRS).min(pieces.len());
            let queries: Vec<_> = (block..end)
                .flat_map(|k| pll_queries(k, &pieces[k], self.scoring))
                .collect();
            let scores = bert.score_masked(&tokens, &queries, self.batch_tokens, &counter.advance())?;
            for (query, score) in queries.iter().zip(scores) {
                pll[query.text] += score.log_probs[0];
            }
        }
        board.remove(counter);
        let n = self.pairs.rows.len();
        if let Some(k) = pll.iter().position(|p| !p.is_finite()) {
            return Err(input(format!(
                "{name}: the pseudo-log-likelihood of the {} sentence of pair {} is {}; nothing is scored",
                if k % 2 == 0 { "good" } else { "bad" },
                match &self.pairs.rows.ids {
                    ExampleIds::Int(ids) => ids[k / 2].to_string(),
                    ExampleIds::Text(ids) => ids[k / 2].clone(),
                },
                pll[k]
            )));
        }
        let prediction: Vec<Option<i64>> = (0..n).map(|i| Some(i64::from(pll[2 * i] > pll[2 * i + 1]))).collect();
        let correct = prediction.iter().flatten().sum::<i64>();
        let mut metadata = vec![(footer::SCORING.to_string(), self.scoring.to_string())];
        if !self.pairs.fields.is_empty() {
            metadata.push((footer::FIELDS.to_string(), json!(self.pairs.fields).to_string()));
        }
        let rows = UnitRows {
            example: self.pairs.rows.ids.clone(),
            label: Numbers::Int(vec![Some(1); n]),
            prediction: Numbers::Int(prediction),
            score: Some((0..n).map(|i| Some(pll[2 * i] - pll[2 * i + 1])).collect()),
            extra: Vec::new(),
            subtask: Some(self.pairs.rows.subtasks.clone()),
            metadata,
            headline: correct as f64 / n as f64,
            weights: Vec::new(),
        };
        pending.iter().try_for_each(|&unit| finished(unit, rows.clone()))
    }

    fn metrics(&self) -> &'static [Metric] {
        &[Metric::Accuracy, Metric::Mean]
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.first() {
            None => "already finished".to_string(),
            Some(accuracy) => format!("{} pairs, accuracy {accuracy:.4}", self.pairs.rows.len()),
        }
    }
}
