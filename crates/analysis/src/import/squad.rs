//! SQuAD 2.0 predictions of the MultiBERTs release: `index.tsv` as for GLUE, one JSON file per
//! run mapping question id → predicted answer text (empty for no answer), and the official
//! `dev-v2.0.json`. Each question gets its exact match or F1 in `score` (so `--metric mean`
//! gives EM or F1), its paragraph as `cluster`.
//!
//! The scorer follows the official evaluation script (v2.0): answers are lower-cased, ASCII
//! punctuation and the articles a/an/the are removed, whitespace is collapsed; a question
//! without gold answers is answered correctly only by the empty string; F1 is over tokens with
//! multiplicity; the best gold answer counts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{read_index, read_text};
use crate::results::{ExampleIds, ResultsTable, Texts, footer};
use mb_stats_files::error::{Result, input};

/// Which per-question score to import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// Exact match after normalisation (0 or 1).
    ExactMatch,
    /// Token-overlap F1 after normalisation.
    F1,
}

static ARTICLES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(a|an|the)\b").expect("valid regex"));

/// The official normalisation: lower-case, drop ASCII punctuation, drop articles, collapse
/// whitespace.
pub fn normalize_answer(text: &str) -> String {
    let lower = text.to_lowercase();
    let no_punctuation: String = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let no_articles = ARTICLES.replace_all(&no_punctuation, " ");
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1 if the normalised texts are equal, else 0.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    f64::from(normalize_answer(prediction) == normalize_answer(gold))
}

/// Token F1 of the normalised texts (1 if both are empty, 0 if only one is).
pub fn f1(prediction: &str, gold: &str) -> f64 {
    let (p, g) = (normalize_answer(prediction), normalize_answer(gold));
    let (p, g): (Vec<&str>, Vec<&str>) = (p.split_whitespace().collect(), g.split_whitespace().collect());
    if p.is_empty() || g.is_empty() {
        return f64::from(p == g);
    }
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    g.iter().for_each(|t| *gold_counts.entry(t).or_default() += 1);
    let mut common = 0;
    for t in &p {
        if let Some(c) = gold_counts.get_mut(t).filter(|c| **c > 0) {
            *c -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let (precision, recall) = (common as f64 / p.len() as f64, common as f64 / g.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

/// The best score over the gold answers (those that normalise to nothing are dropped; a
/// question with none left has the single gold answer "").
pub fn score(prediction: &str, golds: &[String], which: Score) -> f64 {
    let kept: Vec<&str> = golds
        .iter()
        .map(String::as_str)
        .filter(|g| !normalize_answer(g).is_empty())
        .collect();
    let kept = if kept.is_empty() { vec![""] } else { kept };
    let metric = match which {
        Score::ExactMatch => exact_match,
        Score::F1 => f1,
    };
    kept.iter().map(|g| metric(prediction, g)).fold(0.0, f64::max)
}

#[derive(Deserialize)]
struct Dev {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    title: String,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    qas: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
}

/// A question of the dev set: id, paragraph (cluster) and gold answers.
struct Gold {
    id: String,
    paragraph: String,
    answers: Vec<String>,
}

fn read_dev(path: &Path) -> Result<Vec<Gold>> {
    let dev: Dev = serde_json::from_str(&read_text(path)?)
        .map_err(|e| input(format!("{}: not a SQuAD dev file ({e})", path.display())))?;
    let mut questions = Vec::new();
    for article in dev.data {
        for (p, paragraph) in article.paragraphs.into_iter().enumerate() {
            for q in paragraph.qas {
                questions.push(Gold {
                    id: q.id,
                    paragraph: format!("{}#{p}", article.title),
                    answers: q.answers.into_iter().map(|a| a.text).collect(),
                });
            }
        }
    }
    if questions.is_empty() {
        return Err(input(format!(
            "{}: no questions (data[].paragraphs[].qas is empty)",
            path.display()
        )));
    }
    let mut ids: Vec<&str> = questions.iter().map(|q| q.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(input(format!(
            "{}: question id {} appears twice; ids must be unique",
            path.display(),
            pair[0]
        )));
    }
    Ok(questions)
}

/// Imports the runs of `index` (one task) scored against `dev`.
pub fn import(index: &Path, dev: &Path, task: Option<&str>, which: Score) -> Result<ResultsTable> {
    let rows = read_index(index, task)?;
    let questions = read_dev(dev)?;
    let n = rows.len() * questions.len();
    let mut t = ResultsTable {
        group: Texts::with_capacity(n),
        seed: Vec::with_capacity(n),
        step: Some(Vec::with_capacity(n)),
        run: Some(Vec::with_capacity(n)),
        task: Some(Texts::with_capacity(n)),
        layer: None,
        example: ExampleIds::Text(Vec::with_capacity(n)),
        label: None,
        prediction: None,
        score: Some(Vec::with_capacity(n)),
        cluster: Some(Texts::with_capacity(n)),
        extra: vec![("lr".to_string(), Vec::with_capacity(n))],
        metadata: vec![(footer::IMPORT.into(), format!("squad ({which:?} vs {})", dev.display()))],
    };
    for row in &rows {
        if !row.file.is_file() {
            return Err(input(format!(
                "{}: lists {} (seed {}, ft_seed {}), which does not exist",
                index.display(),
                row.file.display(),
                row.pretrain_id,
                row.ft_seed
            )));
        }
        let predictions: HashMap<String, String> = serde_json::from_str(&read_text(&row.file)?).map_err(|e| {
            input(format!(
                "{}: expected a JSON object of question id → answer text ({e})",
                row.file.display()
            ))
        })?;
        // Predictions for questions the dev set does not have: another dev set (or version).
        let known: std::collections::HashSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
        let mut unknown: Vec<&str> = predictions
            .keys()
            .map(String::as_str)
            .filter(|id| !known.contains(id))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(input(format!(
                "{}: {} prediction(s) for questions not in {} (e.g. {}); was it made on another dev set?",
                row.file.display(),
                unknown.len(),
                dev.display(),
                unknown[0]
            )));
        }
        for q in &questions {
            let predicted = predictions
                .get(&q.id)
                .ok_or_else(|| input(format!("{}: no prediction for question {}", row.file.display(), q.id)))?;
            t.group.push(Some(&row.release));
            t.seed.push(row.pretrain_id);
            t.step.as_mut().expect("step").push(Some(row.step));
            t.run.as_mut().expect("run").push(Some(row.ft_seed));
            t.task.as_mut().expect("task").push(Some(&row.task));
            if let ExampleIds::Text(ids) = &mut t.example {
                ids.push(q.id.clone());
            }
            t.score
                .as_mut()
                .expect("score")
                .push(Some(score(predicted, &q.answers, which)));
            t.cluster.as_mut().expect("cluster").push(Some(&q.paragraph));
            t.extra[0].1.push(Some(row.lr));
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_follows_the_official_script() {
        assert_eq!(normalize_answer("The  Eiffel Tower!"), "eiffel tower");
        assert_eq!(
            normalize_answer("an apple, a pear and THE plum."),
            "apple pear and plum"
        );
        // Articles only as whole words: "theory", "anagram" and "area" stay.
        assert_eq!(normalize_answer("theory anagram area"), "theory anagram area");
        // Non-ASCII punctuation is kept; unicode letters are lower-cased.
        assert_eq!(normalize_answer("Ünïcode — “quotes”"), "ünïcode — “quotes”");
        assert_eq!(normalize_answer("  \t\n "), "");
        assert_eq!(normalize_answer("1,000.5"), "10005");
    }

    #[test]
    fn exact_match_and_f1_on_tricky_cases() {
        assert_eq!(exact_match("the Denver Broncos", "Denver Broncos"), 1.0);
        assert_eq!(exact_match("Denver", "Denver Broncos"), 0.0);
        // F1 with multiplicity: pred "x y y", gold "y y z" → common 2, p = 2/3, r = 2/3.
        assert!((f1("x y y", "y y z") - 2.0 / 3.0).abs() < 1e-12);
        assert!((f1("Denver", "Denver Broncos") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(f1("", ""), 1.0);
        assert_eq!(f1("something", ""), 0.0);
        assert_eq!(f1("", "something"), 0.0);
        assert_eq!(f1("a the an", ""), 1.0, "only articles normalise to empty");
        assert_eq!(f1("cat", "dog"), 0.0);
    }

    #[test]
    fn best_gold_answer_and_no_answer_questions() {
        let golds = vec!["Broncos".to_string(), "the Denver Broncos".to_string()];
        assert_eq!(score("Denver Broncos", &golds, Score::ExactMatch), 1.0);
        assert!((score("Broncos team", &golds, Score::F1) - 2.0 / 3.0).abs() < 1e-12);
        // No gold answers (unanswerable): only the empty prediction is right.
        assert_eq!(score("", &[], Score::ExactMatch), 1.0);
        assert_eq!(score("Denver", &[], Score::F1), 0.0);
        // Gold answers that normalise to nothing are dropped.
        assert_eq!(score("", &["the".to_string()], Score::ExactMatch), 1.0);
    }
}
