//! `kind = "winogender"`: gender bias on the Winogender schemas (Rudinger et al., 2018) in
//! masked-LM form. Each template is filled with its occupation and with its other participant
//! or "someone" (the 720 published sentences come in these 240 contexts), and its pronoun is
//! masked; the model's log-probabilities of the female, male and neutral forms of the pronoun's
//! case are read there: she / he / they, her / him / them, her / his / their.
//!
//! A row per sentence: `prediction` = log P(female form) − log P(male form), `label` = the
//! occupation's percentage of women in the 2015 US Bureau of Labor Statistics data
//! (`bls_pct_female`), `cluster` = the occupation, `score` = 1 when the female form is the more
//! probable, and `log_p_female`, `log_p_male`, `log_p_neutral` as extra columns. So the bias
//! correlation of Sellam et al. (2022) is `--metric pearson`, computed over sentences with the
//! occupations resampled as clusters, and `--metric mean` is the share of sentences where the
//! female form wins.
//!
//! A form that the vocabulary splits into several pieces is scored as a word: every piece
//! masked, each read left to right with the later ones still masked (as `pll-word-l2r`), so a
//! small vocabulary still compares whole words.

use std::path::Path;

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::mlm_data::require_head;
use super::{Saved, Task, TaskSource, Unit, UnitRows};
use crate::dataset::TextTable;
use crate::digest::Digest;
use crate::progress::Board;
use mb_stats_analysis::results::{ExampleIds, Numbers, footer};
use mb_stats_bert::Bert;
use mb_stats_bert::mlm::MaskedQuery;
use mb_stats_bert::tokenizer::Tokens;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

/// `[task]` of Winogender: no settings of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinogenderSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
}

/// `[data]` of Winogender: the published files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinogenderData {
    /// `templates.tsv`: `occupation(0)`, `other-participant(1)`, `answer`, `sentence`.
    pub templates: String,
    /// `occupations-stats.tsv`: `occupation`, `bls_pct_female`.
    pub occupations: String,
}

/// The pronoun placeholders of the templates and their forms: female, male, neutral.
const CASES: [(&str, [&str; 3]); 3] = [
    ("$NOM_PRONOUN", ["she", "he", "they"]),
    ("$ACC_PRONOUN", ["her", "him", "them"]),
    ("$POSS_PRONOUN", ["her", "his", "their"]),
];

/// One masked context: the text before and after the pronoun and the pronoun's case.
#[derive(Debug, Clone)]
struct Context {
    id: String,
    occupation: String,
    before: String,
    after: String,
    forms: [&'static str; 3],
    bls_pct_female: f64,
}

/// The task's tables of `source`, read and checked.
pub fn read(source: &TaskSource) -> Result<WinogenderData> {
    let (_, data): (WinogenderSpec, WinogenderData) = source.sections()?;
    Ok(data)
}

/// The Winogender task of an experiment, with its contexts.
pub struct Winogender {
    contexts: Vec<Context>,
    batch_tokens: usize,
    /// The experiment file, for messages.
    source: String,
}

impl Winogender {
    /// The task of `source`, its templates filled and checked.
    pub fn new(source: &TaskSource) -> Result<Self> {
        let data = read(source)?;
        let stats = TextTable::read(&source.resolve(&data.occupations))?;
        let bls: HashMap<&str, &String> = stats
            .column("occupation")?
            .iter()
            .map(String::as_str)
            .zip(stats.column("bls_pct_female")?)
            .collect();
        let templates = TextTable::read(&source.resolve(&data.templates))?;
        let at = |i: usize| format!("{}: row {}", templates.source().display(), i + 1);
        let mut contexts = Vec::new();
        let columns = ["occupation(0)", "other-participant(1)", "answer", "sentence"].map(|c| templates.column(c));
        let [occupations, participants, answers, sentences] = columns;
        let (occupations, participants, answers, sentences) = (occupations?, participants?, answers?, sentences?);
        for i in 0..templates.len() {
            let occupation = occupations[i].trim();
            let pct = bls.get(occupation).ok_or_else(|| {
                input(format!(
                    "{}: occupation {occupation:?} is not in {}",
                    at(i),
                    stats.source().display()
                ))
            })?;
            let bls_pct_female: f64 = pct
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| (0.0..=100.0).contains(p))
                .ok_or_else(|| {
                    input(format!(
                        "{}: bls_pct_female of {occupation} is {pct:?}; expected a percentage",
                        stats.source().display()
                    ))
                })?;
            let found: Vec<_> = CASES.iter().filter(|(p, _)| sentences[i].contains(p)).collect();
            let [(placeholder, forms)] = found.as_slice() else {
                return Err(input(format!(
                    "{}: expected exactly one pronoun placeholder ($NOM_PRONOUN, $ACC_PRONOUN or $POSS_PRONOUN) in {:?}",
                    at(i),
                    sentences[i]
                )));
            };
            for participant in [participants[i].trim(), "someone"] {
                let text = sentences[i]
                    .replace("$OCCUPATION", occupation)
                    .replace("$PARTICIPANT", participant);
                let (before, after) = text.split_once(placeholder).expect("the placeholder was found");
                let id = format!("{occupation}.{participant}.{}", answers[i].trim());
                contexts.push(Context {
                    id,
                    occupation: occupation.to_string(),
                    before: before.to_string(),
                    after: after.to_string(),
                    forms: *forms,
                    bls_pct_female,
                });
            }
        }
        if contexts.is_empty() {
            return Err(input(format!("{}: no templates", templates.source().display())));
        }
        Ok(Winogender {
            contexts,
            batch_tokens: source.batch_tokens,
            source: source.path.display().to_string(),
        })
    }

    /// The queries reading each form of context `c` (text `3c + f` is the context with form `f`),
    /// the form's pieces found as the words the text before it does not have.
    fn queries(&self, bert: &Bert, name: &str) -> Result<(Vec<Tokens>, Vec<MaskedQuery>)> {
        let tokenizer = bert.tokenizer();
        let befores: Vec<&str> = self.contexts.iter().map(|c| c.before.trim_end()).collect();
        let words_before: Vec<usize> = tokenizer
            .encode_words(&befores)?
            .iter()
            .map(|p| p.words.iter().flatten().max().map_or(0, |w| *w as usize + 1))
            .collect();
        let texts: Vec<String> = self
            .contexts
            .iter()
            .flat_map(|c| c.forms.map(|form| format!("{}{form}{}", c.before, c.after)))
            .collect();
        let pieces = tokenizer.encode_words(&texts.iter().map(String::as_str).collect::<Vec<_>>())?;
        let mut queries = Vec::new();
        for (k, p) in pieces.iter().enumerate() {
            let context = &self.contexts[k / 3];
            if p.truncated {
                return Err(input(format!(
                    "{name}: Winogender context {} with {:?} is longer than {} tokens under its tokenizer; raise runtime.max_length in {} (the model allows {}) or leave its template out",
                    context.id,
                    context.forms[k % 3],
                    tokenizer.max_length(),
                    self.source,
                    bert.model().config().max_position_embeddings
                )));
            }
            let word = words_before[k / 3] as u32;
            let positions: Vec<usize> = (0..p.words.len()).filter(|&i| p.words[i] == Some(word)).collect();
            if positions.is_empty() {
                return Err(input(format!(
                    "{name}: Winogender context {}: the pronoun has no tokens",
                    context.id
                )));
            }
            for (r, &read) in positions.iter().enumerate() {
                queries.push(MaskedQuery {
                    text: k,
                    masked: positions[r..].to_vec(),
                    read,
                    wanted: vec![p.tokens.ids[read]],
                });
            }
        }
        Ok((pieces.into_iter().map(|p| p.tokens).collect(), queries))
    }
}

impl Task for Winogender {
    fn kind(&self) -> &'static str {
        "winogender"
    }

    fn data_digest(&self) -> String {
        let mut h = Digest::default();
        h.field("winogender");
        for c in &self.contexts {
            for field in [&c.id, &c.occupation, &c.before, &c.after] {
                h.field(field);
            }
            h.field(&c.forms.join("|"));
            h.field(&c.bls_pct_female.to_string());
        }
        h.finish()
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
        require_head(bert, name, "winogender")?;
        let (tokens, queries) = self.queries(bert, name)?;
        let counter = board.counter(queries.len(), "masked pronouns");
        let scores = bert.score_masked(&tokens, &queries, self.batch_tokens, &counter.advance())?;
        board.remove(counter);
        let mut log_p = vec![0f64; tokens.len()];
        for (query, score) in queries.iter().zip(scores) {
            log_p[query.text] += score.log_probs[0];
        }
        if let Some(k) = log_p.iter().position(|p| !p.is_finite()) {
            return Err(input(format!(
                "{name}: Winogender context {}: log P({}) is {}; nothing is scored",
                self.contexts[k / 3].id,
                self.contexts[k / 3].forms[k % 3],
                log_p[k]
            )));
        }
        let n = self.contexts.len();
        let form = |f: usize| (0..n).map(|c| Some(log_p[3 * c + f])).collect::<Vec<_>>();
        let preference: Vec<Option<f64>> = (0..n).map(|c| Some(log_p[3 * c] - log_p[3 * c + 1])).collect();
        let female_wins: Vec<Option<f64>> = preference
            .iter()
            .map(|d| d.map(|d| f64::from(u8::from(d > 0.0))))
            .collect();
        let share = female_wins.iter().flatten().sum::<f64>() / n as f64;
        let rows = UnitRows {
            example: ExampleIds::Text(self.contexts.iter().map(|c| c.id.clone()).collect()),
            label: Numbers::Float(self.contexts.iter().map(|c| Some(c.bls_pct_female)).collect()),
            prediction: Numbers::Float(preference),
            score: Some(female_wins),
            subtask: None,
            cluster: Some(self.contexts.iter().map(|c| c.occupation.clone()).collect()),
            extra: vec![
                ("log_p_female".to_string(), form(0)),
                ("log_p_male".to_string(), form(1)),
                ("log_p_neutral".to_string(), form(2)),
            ],
            metadata: vec![(footer::SCORING.to_string(), "pronoun-log-probability".to_string())],
            headline: share,
            saved: Saved::Nothing,
        };
        pending.iter().try_for_each(|&unit| finished(unit, rows.clone()))
    }

    fn metrics(&self) -> &'static [Metric] {
        &[Metric::Pearson, Metric::Spearman, Metric::Mean]
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.first() {
            None => "already finished".to_string(),
            Some(share) => format!(
                "{} sentences, the female form preferred in {:.1}%",
                self.contexts.len(),
                100.0 * share
            ),
        }
    }
}
