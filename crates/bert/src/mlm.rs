//! Masked-LM scoring: the log-probability of chosen tokens at masked positions.
//!
//! A [`MaskedQuery`] is one masked copy of a tokenized text: some positions replaced by `[MASK]`,
//! one position whose distribution is read. [`Bert::score_masked`] packs the copies of many texts
//! into length-sorted token-budget batches on the padding-free path and runs the masked-LM head at
//! the read positions only. [`pll_queries`] makes the copies of a pseudo-log-likelihood
//! (Salazar et al., 2020), in its original form or word-aware left-to-right (Kauf & Ivanova, 2023).

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;
use serde_with::DeserializeFromStr;

use crate::Bert;
use crate::batch::{pad_batch, plan_batches};
use crate::candle_error::candle_message;
use crate::tokenizer::{Tokens, WordPieces};
use mb_stats_files::error::{Result, input};

/// How a text's pseudo-log-likelihood masks its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, DeserializeFromStr)]
pub enum PllScoring {
    /// `pll`: each token masked alone (Salazar et al., 2020).
    #[default]
    Original,
    /// `pll-word-l2r`: each token masked together with the later pieces of its word (Kauf &
    /// Ivanova, 2023), so a multi-piece word cannot be read off its own other pieces.
    WordL2r,
}

impl FromStr for PllScoring {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pll" => Ok(PllScoring::Original),
            "pll-word-l2r" => Ok(PllScoring::WordL2r),
            _ => Err(format!("expected \"pll\" or \"pll-word-l2r\", got {s:?}")),
        }
    }
}

impl fmt::Display for PllScoring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PllScoring::Original => "pll",
            PllScoring::WordL2r => "pll-word-l2r",
        })
    }
}

/// One masked copy of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedQuery {
    /// Which text (index into the texts given to [`Bert::score_masked`]).
    pub text: usize,
    /// Positions replaced by `[MASK]`.
    pub masked: Vec<usize>,
    /// The position whose distribution is read.
    pub read: usize,
    /// Token ids whose log-probabilities at `read` are returned.
    pub wanted: Vec<u32>,
}

/// What one query returns.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedScore {
    /// Natural-log probability of each wanted id, over the whole vocabulary.
    pub log_probs: Vec<f64>,
    /// The most probable token over the whole vocabulary (the lowest id among ties).
    pub top: u32,
    /// The rank of the first wanted id over the whole vocabulary (1 = the most probable; ties
    /// share the best rank).
    pub rank: usize,
}

/// The masked copies of a pseudo-log-likelihood of `pieces` (text number `text`): one per token
/// the tokenizer did not add, reading that token's own id. Their log-probabilities sum to the PLL.
pub fn pll_queries(text: usize, pieces: &WordPieces, scoring: PllScoring) -> Vec<MaskedQuery> {
    let words = &pieces.words;
    (0..words.len())
        .filter(|&i| words[i].is_some())
        .map(|i| {
            let masked = match scoring {
                PllScoring::Original => vec![i],
                PllScoring::WordL2r => (i..words.len()).filter(|&j| words[j] == words[i]).collect(),
            };
            MaskedQuery {
                text,
                masked,
                read: i,
                wanted: vec![pieces.tokens.ids[i]],
            }
        })
        .collect()
}

impl Bert {
    /// Whether the checkpoint can score masked tokens (it has the `cls.predictions` head).
    pub fn has_mlm_head(&self) -> bool {
        self.model.has_mlm_head()
    }

    /// Score `queries` over `texts` in batches of at most `token_budget` padded tokens, one result
    /// per query in order; `progress` is told how many queries each finished batch held.
    /// Time: the encoder over every copy, plus the head (`hidden × vocab`) once per query.
    pub fn score_masked(
        &self,
        texts: &[Tokens],
        queries: &[MaskedQuery],
        token_budget: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<MaskedScore>> {
        let mask_id = self
            .tokenizer
            .token_id("[MASK]")
            .ok_or_else(|| input("the vocabulary has no [MASK] token"))?;
        let lengths: Vec<usize> = queries.iter().map(|q| texts[q.text].ids.len()).collect();
        let mut scores: Vec<Option<MaskedScore>> = vec![None; queries.len()];
        let run = |e: candle_core::Error| input(format!("running the model: {}", candle_message(&e)));
        for batch in plan_batches(&lengths, token_budget) {
            let copies: Vec<Tokens> = batch
                .iter()
                .map(|&q| {
                    let query = &queries[q];
                    let mut copy = texts[query.text].clone();
                    query.masked.iter().for_each(|&p| copy.ids[p] = mask_id);
                    copy
                })
                .collect();
            let members: Vec<&Tokens> = copies.iter().collect();
            let padded = pad_batch(&members, self.tokenizer.pad_id(), &self.device).map_err(run)?;
            let positions: Vec<(usize, usize)> = batch.iter().enumerate().map(|(b, &q)| (b, queries[q].read)).collect();
            let logits = self
                .model
                .mlm_logits_at(&padded, &positions)
                .map_err(run)?
                .ok_or_else(|| input("the checkpoint has no masked-LM head (cls.predictions)"))?;
            let rows = logits.to_vec2::<f32>().map_err(run)?;
            let batch_scores: Vec<MaskedScore> = rows
                .par_iter()
                .zip(batch.par_iter())
                .map(|(row, &q)| score_row(row, &queries[q].wanted))
                .collect();
            for (&q, score) in batch.iter().zip(batch_scores) {
                scores[q] = Some(score);
            }
            progress(batch.len());
        }
        Ok(scores
            .into_iter()
            .map(|s| s.expect("every query is in one batch"))
            .collect())
    }
}

/// Log-softmax of one row of logits at `wanted`, and its arg-max. The normaliser is summed in f64.
fn score_row(row: &[f32], wanted: &[u32]) -> MaskedScore {
    let (top, max) = row.iter().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
    );
    let max = f64::from(max);
    let log_norm = max + row.iter().map(|&v| (f64::from(v) - max).exp()).sum::<f64>().ln();
    let rank = wanted
        .first()
        .map_or(0, |&w| 1 + row.iter().filter(|&&v| v > row[w as usize]).count());
    MaskedScore {
        log_probs: wanted.iter().map(|&w| f64::from(row[w as usize]) - log_norm).collect(),
        top: top as u32,
        rank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(words: Vec<Option<u32>>) -> WordPieces {
        let n = words.len();
        WordPieces {
            tokens: Tokens {
                ids: (100..100 + n as u32).collect(),
                type_ids: vec![0; n],
            },
            words,
            truncated: false,
        }
    }

    #[test]
    fn original_pll_masks_each_text_token_alone() {
        let p = pieces(vec![None, Some(0), Some(1), Some(1), None]);
        let q = pll_queries(7, &p, PllScoring::Original);
        assert_eq!(q.len(), 3);
        assert_eq!(
            q[1],
            MaskedQuery {
                text: 7,
                masked: vec![2],
                read: 2,
                wanted: vec![102]
            }
        );
    }

    #[test]
    fn word_l2r_also_masks_the_later_pieces_of_the_same_word() {
        // [CLS] w0 w1a w1b w1c w2 [SEP]
        let p = pieces(vec![None, Some(0), Some(1), Some(1), Some(1), Some(2), None]);
        let q = pll_queries(0, &p, PllScoring::WordL2r);
        let masked: Vec<Vec<usize>> = q.iter().map(|q| q.masked.clone()).collect();
        assert_eq!(masked, vec![vec![1], vec![2, 3, 4], vec![3, 4], vec![4], vec![5]]);
        assert_eq!(q.iter().map(|q| q.read).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_row_is_scored_as_the_definition_of_log_softmax() {
        let row = [1.0f32, 3.0, -2.0, 3.0];
        let s = score_row(&row, &[1, 2]);
        let z: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
        assert!((s.log_probs[0] - (3f64.exp() / z).ln()).abs() < 1e-12);
        assert!((s.log_probs[1] - ((-2f64).exp() / z).ln()).abs() < 1e-12);
        assert_eq!(s.top, 1, "the first of tied maxima");
        assert_eq!(
            (s.rank, score_row(&row, &[2]).rank, score_row(&row, &[0]).rank),
            (1, 4, 3)
        );
    }

    #[test]
    fn scorings_parse_and_print_as_written() {
        for s in ["pll", "pll-word-l2r"] {
            assert_eq!(s.parse::<PllScoring>().unwrap().to_string(), s);
        }
        assert!("l2r".parse::<PllScoring>().unwrap_err().contains("pll-word-l2r"));
    }
}
