//! `kind = "minimal-pairs"`: which sentence of each pair the masked LM prefers. Each sentence is
//! scored by its pseudo-log-likelihood ([`PllScoring`]); a pair's row has `label` 1, `prediction`
//! 1 when PLL(good) > PLL(bad) else 0, and `score` PLL(good) − PLL(bad), so accuracy is the share
//! of pairs the model gets right. A sentence longer than the maximum length is refused (the PLL
//! of a truncated sentence is wrong), naming its row.

use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::mlm_data::{Pairs, PairsSpec, require_head};
use super::{Task, TaskSource, Unit, UnitRows};
use crate::progress::Board;
use mb_stats_analysis::results::footer;
use mb_stats_bert::Bert;
use mb_stats_bert::mlm::{PllScoring, pll_queries};
use mb_stats_core::metric::Metric;
use mb_stats_files::error::Result;

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

    fn evaluate(
        &self,
        bert: &Bert,
        pending: &[Unit],
        name: &str,
        _state: &Path,
        board: &Board,
        finished: &mut dyn FnMut(Unit, UnitRows) -> Result<()>,
    ) -> Result<()> {
        require_head(bert, name, "minimal-pairs")?;
        let pieces = self.pairs.pieces(bert, name, &self.source)?;
        let queries = |k: usize| pll_queries(k, &pieces[k], self.scoring);
        let pll = self
            .pairs
            .sentence_scores(bert, &pieces, &queries, self.batch_tokens, name, board)?;
        let mut metadata = vec![(footer::SCORING.to_string(), self.scoring.to_string())];
        if !self.pairs.fields.is_empty() {
            metadata.push((footer::FIELDS.to_string(), json!(self.pairs.fields).to_string()));
        }
        let rows = self.pairs.rows(&pll, metadata);
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
