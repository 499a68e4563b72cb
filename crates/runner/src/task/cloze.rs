//! `kind = "cloze"`: the masked LM's prediction at each prompt's one `[MASK]`. Without candidates,
//! `prediction` is the top-1 token id over the vocabulary, `label` the gold token's id and `score`
//! its log-probability over the vocabulary; with candidates (`he|she|they`), `prediction` and
//! `label` are indices into the candidates and `score` is the gold's log-probability renormalised
//! over them; the extra column `rank` is the gold's rank (1 = first) over the vocabulary or the
//! candidates. `accuracy` is precision@1. A gold or candidate that is not one word-piece of the
//! checkpoint's vocabulary is refused, naming the row (no multi-piece scoring).

use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::mlm_data::{MASK, Prompts, PromptsSpec, require_head};
use super::{Saved, Task, TaskSource, Unit, UnitRows};
use crate::progress::Board;
use mb_stats_analysis::results::{Numbers, footer};
use mb_stats_bert::Bert;
use mb_stats_bert::mlm::MaskedQuery;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

/// `[task]` of cloze: no settings of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClozeSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
}

impl ClozeSpec {
    /// The task's `[task]` and `[data]` of `source`, read and checked.
    pub fn read(source: &TaskSource) -> Result<(ClozeSpec, PromptsSpec)> {
        let (task, data): (ClozeSpec, PromptsSpec) = source.sections()?;
        data.check(source)?;
        Ok((task, data))
    }
}

/// The cloze task of an experiment, with its prompts.
pub struct Cloze {
    prompts: Prompts,
    batch_tokens: usize,
    /// `[data] target`, for messages.
    target_column: String,
    /// The experiment file, for messages.
    source: String,
}

impl Cloze {
    /// The task of `source`, its prompts read and checked.
    pub fn new(source: &TaskSource) -> Result<Self> {
        let (_, data) = ClozeSpec::read(source)?;
        Ok(Cloze {
            prompts: Prompts::load(source, &data)?,
            batch_tokens: source.batch_tokens,
            target_column: data.target.clone(),
            source: source.path.display().to_string(),
        })
    }

    /// The one vocabulary id of `token` under `bert`'s tokenizer, or an error naming row `row`.
    fn single_piece(&self, bert: &Bert, token: &str, row: usize, what: &str) -> Result<u32> {
        let pieces = bert.tokenizer().encode_words(&[token])?.remove(0);
        let ids: Vec<u32> = pieces
            .tokens
            .ids
            .iter()
            .zip(&pieces.words)
            .filter(|(_, w)| w.is_some())
            .map(|(&id, _)| id)
            .collect();
        match ids.as_slice() {
            [id] => Ok(*id),
            _ => Err(input(format!(
                "{}: {what} {token:?} is {} word-pieces in this checkpoint's vocabulary; cloze scores single-piece tokens only",
                self.prompts.rows.origin.describe(row),
                ids.len()
            ))),
        }
    }

    /// One query per prompt: the `[MASK]` position, reading the gold (and candidates).
    fn queries(&self, bert: &Bert, name: &str) -> Result<(Vec<mb_stats_bert::tokenizer::Tokens>, Vec<MaskedQuery>)> {
        let mask_id = bert
            .tokenizer()
            .token_id(MASK)
            .ok_or_else(|| input(format!("{name}: the vocabulary has no {MASK} token")))?;
        let texts: Vec<&str> = self.prompts.texts.iter().map(String::as_str).collect();
        let pieces = bert.tokenizer().encode_words(&texts)?;
        let mut queries = Vec::with_capacity(pieces.len());
        for (row, p) in pieces.iter().enumerate() {
            let at = self.prompts.rows.origin.describe(row);
            if p.truncated {
                return Err(input(format!(
                    "{at}: the prompt is longer than {} tokens under {name}'s tokenizer; raise runtime.max_length in {} or shorten it",
                    bert.tokenizer().max_length(),
                    self.source
                )));
            }
            let read = p.tokens.ids.iter().position(|&id| id == mask_id).ok_or_else(|| {
                input(format!(
                    "{at}: the tokenizer of {name} did not keep {MASK} as one token"
                ))
            })?;
            let gold = self.single_piece(bert, &self.prompts.targets[row], row, &self.target_column)?;
            let wanted = match &self.prompts.candidates {
                None => vec![gold],
                Some(all) => all[row]
                    .iter()
                    .map(|c| self.single_piece(bert, c, row, "candidate"))
                    .collect::<Result<_>>()?,
            };
            queries.push(MaskedQuery {
                text: row,
                masked: Vec::new(),
                read,
                wanted,
            });
        }
        Ok((pieces.into_iter().map(|p| p.tokens).collect(), queries))
    }
}

impl Task for Cloze {
    fn kind(&self) -> &'static str {
        "cloze"
    }

    fn data_digest(&self) -> String {
        self.prompts.digest()
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
        require_head(bert, name, "cloze")?;
        let (tokens, queries) = self.queries(bert, name)?;
        let counter = board.counter(queries.len(), "prompts");
        let scores = bert.score_masked(&tokens, &queries, self.batch_tokens, &counter.advance())?;
        board.remove(counter);
        let n = queries.len();
        let (mut label, mut prediction, mut score) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let mut rank = Vec::with_capacity(n);
        for (row, (query, s)) in queries.iter().zip(&scores).enumerate() {
            match &self.prompts.candidates {
                None => {
                    label.push(Some(i64::from(query.wanted[0])));
                    prediction.push(Some(i64::from(s.top)));
                    score.push(Some(s.log_probs[0]));
                    rank.push(Some(s.rank as f64));
                }
                Some(all) => {
                    let gold = all[row]
                        .iter()
                        .position(|c| *c == self.prompts.targets[row])
                        .expect("checked at load");
                    let best =
                        (0..s.log_probs.len()).fold(0, |b, i| if s.log_probs[i] > s.log_probs[b] { i } else { b });
                    let max = s.log_probs[best];
                    let log_norm = max + s.log_probs.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                    label.push(Some(gold as i64));
                    prediction.push(Some(best as i64));
                    score.push(Some(s.log_probs[gold] - log_norm));
                    let above = s.log_probs.iter().filter(|&&l| l > s.log_probs[gold]).count();
                    rank.push(Some((1 + above) as f64));
                }
            }
        }
        if let Some(row) = score.iter().position(|s| !s.is_some_and(f64::is_finite)) {
            return Err(input(format!(
                "{name}: the log-probability of prompt {} is not finite; nothing is scored",
                self.prompts.rows.origin.describe(row)
            )));
        }
        let correct = label.iter().zip(&prediction).filter(|(l, p)| l == p).count();
        let scope = match self.prompts.candidates {
            Some(_) => "candidates",
            None => "vocabulary",
        };
        let rows = UnitRows {
            example: self.prompts.rows.ids.clone(),
            label: Numbers::Int(label),
            prediction: Numbers::Int(prediction),
            score: Some(score),
            cluster: None,
            extra: vec![("rank".to_string(), rank)],
            subtask: Some(self.prompts.rows.subtasks.clone()),
            metadata: vec![(footer::CLOZE_OVER.to_string(), scope.to_string())],
            headline: correct as f64 / n as f64,
            saved: Saved::Nothing,
        };
        pending.iter().try_for_each(|&unit| finished(unit, rows.clone()))
    }

    fn metrics(&self) -> &'static [Metric] {
        &[Metric::Accuracy, Metric::Mean]
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.first() {
            None => "already finished".to_string(),
            Some(p) => format!("{} prompts, precision@1 {p:.4}", self.prompts.rows.len()),
        }
    }
}
