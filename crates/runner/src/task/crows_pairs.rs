//! `kind = "crows-pairs"`: CrowS-Pairs (Nangia et al., 2020), the published metric. Each pair
//! has a more and a less stereotyping sentence (`sent_more`, `sent_less`); each sentence is
//! scored by the pseudo-log-likelihood of the tokens the two sentences share, one masked at a
//! time, so the tokens that differ are conditioned on and never scored. The shared tokens are
//! the matching blocks of Python's `difflib.SequenceMatcher` over the two token-id sequences, as
//! the authors' `metric.py` finds them ([`shared_positions`]), `[CLS]` and `[SEP]` left out.
//!
//! A pair's row has `label` 1, `prediction` 1 when the more stereotyping sentence scores higher
//! (a tie is 0, as the published metric counts it neutral), `score` the difference, and the
//! pair's `bias_type` as `task`: accuracy is the percentage of pairs where the model prefers the
//! stereotype (50 = no preference), overall or `--by task`.

use std::path::Path;

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::mlm_data::{Pairs, PairsSpec, require_head};
use super::{Task, TaskSource, Unit, UnitRows};
use crate::progress::Board;
use mb_stats_analysis::results::footer;
use mb_stats_bert::Bert;
use mb_stats_bert::mlm::MaskedQuery;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::Result;

/// `[task]` of CrowS-Pairs: no settings of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowsPairsSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
}

/// `[data]` of CrowS-Pairs: the published CSV's columns by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowsPairsData {
    /// A file (`crows_pairs_anonymized.csv`), a folder of files or a Hub glob.
    pub eval: String,
    /// The column with the more stereotyping sentence.
    #[serde(default = "default_more")]
    pub more: String,
    /// The column with the less stereotyping sentence.
    #[serde(default = "default_less")]
    pub less: String,
    /// The column written to the results' `task` column.
    #[serde(default = "default_bias_type")]
    pub bias_type: String,
    /// The column with example ids (default: the row).
    #[serde(default)]
    pub id: Option<String>,
    /// Evaluate on the first this-many rows.
    #[serde(default)]
    pub eval_size: Option<usize>,
}

fn default_more() -> String {
    "sent_more".into()
}
fn default_less() -> String {
    "sent_less".into()
}
fn default_bias_type() -> String {
    "bias_type".into()
}

impl CrowsPairsData {
    /// As minimal pairs: the more stereotyping sentence first.
    fn pairs(self) -> PairsSpec {
        PairsSpec {
            eval: self.eval,
            good: self.more,
            bad: self.less,
            subtask: Some(self.bias_type),
            id: self.id,
            eval_size: self.eval_size,
        }
    }
}

/// The task's `[task]` and `[data]` of `source`, read and checked.
pub fn read(source: &TaskSource) -> Result<PairsSpec> {
    let (_, data): (CrowsPairsSpec, CrowsPairsData) = source.sections()?;
    let data = data.pairs();
    data.check(source)?;
    Ok(data)
}

/// The CrowS-Pairs task of an experiment, with its pairs.
pub struct CrowsPairs {
    pairs: Pairs,
    batch_tokens: usize,
    /// The experiment file, for messages.
    source: String,
}

impl CrowsPairs {
    /// The task of `source`, its pairs read and checked.
    pub fn new(source: &TaskSource) -> Result<Self> {
        Ok(CrowsPairs {
            pairs: Pairs::load(source, &read(source)?)?,
            batch_tokens: source.batch_tokens,
            source: source.path.display().to_string(),
        })
    }
}

/// The positions of `a` and of `b` in the blocks the two sequences share, as Python's
/// `difflib.SequenceMatcher(None, a, b).get_matching_blocks()` finds them: the longest matching
/// block (earliest in `a`, then in `b`), then the same left and right of it; with difflib's
/// "popular element" rule for `b` of 200 items or more (an item more frequent than 1% + 1 is not
/// indexed, though a block may still extend over it).
pub fn shared_positions(a: &[u32], b: &[u32]) -> (Vec<usize>, Vec<usize>) {
    let mut b2j: HashMap<u32, Vec<usize>> = HashMap::new();
    for (j, &x) in b.iter().enumerate() {
        b2j.entry(x).or_default().push(j);
    }
    if b.len() >= 200 {
        let most = b.len() / 100 + 1;
        b2j.retain(|_, js| js.len() <= most);
    }
    let longest = |alo: usize, ahi: usize, blo: usize, bhi: usize| -> (usize, usize, usize) {
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0);
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        for (i, x) in a.iter().enumerate().take(ahi).skip(alo) {
            let mut next = HashMap::new();
            for &j in b2j.get(x).map(Vec::as_slice).unwrap_or_default() {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = j.checked_sub(1).and_then(|p| j2len.get(&p)).copied().unwrap_or(0) + 1;
                next.insert(j, k);
                if k > bestsize {
                    (besti, bestj, bestsize) = (i + 1 - k, j + 1 - k, k);
                }
            }
            j2len = next;
        }
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            (besti, bestj, bestsize) = (besti - 1, bestj - 1, bestsize + 1);
        }
        while besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] == b[bestj + bestsize] {
            bestsize += 1;
        }
        (besti, bestj, bestsize)
    };
    let mut blocks = Vec::new();
    let mut queue = vec![(0, a.len(), 0, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest(alo, ahi, blo, bhi);
        if k > 0 {
            blocks.push((i, j, k));
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    blocks.sort_unstable();
    blocks
        .iter()
        .flat_map(|&(i, j, k)| (0..k).map(move |d| (i + d, j + d)))
        .unzip()
}

impl Task for CrowsPairs {
    fn kind(&self) -> &'static str {
        "crows-pairs"
    }

    fn data_digest(&self) -> String {
        self.pairs.digest()
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
        require_head(bert, name, "crows-pairs")?;
        let pieces = self.pairs.pieces(bert, name, &self.source)?;
        // Each sentence's shared positions, the special tokens left out.
        let shared: Vec<Vec<usize>> = pieces
            .chunks(2)
            .flat_map(|pair| {
                let (more, less) = shared_positions(&pair[0].tokens.ids, &pair[1].tokens.ids);
                [(more, &pair[0]), (less, &pair[1])]
                    .map(|(positions, p)| positions.into_iter().filter(|&i| p.words[i].is_some()).collect())
            })
            .collect();
        let queries = |k: usize| -> Vec<MaskedQuery> {
            shared[k]
                .iter()
                .map(|&i| MaskedQuery {
                    text: k,
                    masked: vec![i],
                    read: i,
                    wanted: vec![pieces[k].tokens.ids[i]],
                })
                .collect()
        };
        let scores = self
            .pairs
            .sentence_scores(bert, &pieces, &queries, self.batch_tokens, name, board)?;
        let rows = self.pairs.rows(
            &scores,
            vec![(footer::SCORING.to_string(), "pll-shared-tokens".to_string())],
        );
        pending.iter().try_for_each(|&unit| finished(unit, rows.clone()))
    }

    fn metrics(&self) -> &'static [Metric] {
        &[Metric::Accuracy, Metric::Mean]
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.first() {
            None => "already finished".to_string(),
            Some(share) => format!(
                "{} pairs, the more stereotyping sentence preferred in {:.1}%",
                self.pairs.rows.len(),
                100.0 * share
            ),
        }
    }
}
