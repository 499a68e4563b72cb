//! Counterfactual data augmentation (CDA), two-sided: a text that contains a listed word is
//! trained on together with its copy in which every listed word is swapped for its pair (he ↔
//! she, him ↔ her, his ↔ her, man ↔ woman, …), whole words only, case kept (`He` → `She`,
//! `HIS` → `HER`).
//!
//! "her" is two words in one: the object of "him" and the possessive of "his". Without a
//! part-of-speech tagger it is read from the next word: "her" before a word that can start a
//! noun phrase (not a function word, not punctuation, not the end) is the possessive and becomes
//! "his"; otherwise it becomes "him" ("gave her the book" → "gave him the book", "her book" →
//! "his book", "saw her." → "saw him."). Likewise "his" with no noun after it ("the book is
//! his.") is the independent possessive and becomes "hers", and "hers" becomes "his". The rule
//! errs where the object is followed by a noun phrase without a determiner ("gave her flowers" →
//! "gave his flowers"); [`FUNCTION_WORDS`] lists the words that cannot follow a possessive.

use std::collections::HashMap;
use std::path::Path;

use mb_stats_files::error::{Result, input};

/// The project's own word pairs (male, female), one per line, `#` comments: written for this
/// tool from common English gendered nouns, titles and pronouns.
pub const BUNDLED_PAIRS: &str = include_str!("cda_pairs.txt");

/// Words after which "her" is the object, not the possessive (prepositions, conjunctions,
/// determiners, adverbs and auxiliaries that cannot follow a possessive).
const FUNCTION_WORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "against",
    "all",
    "also",
    "an",
    "and",
    "any",
    "are",
    "around",
    "as",
    "at",
    "away",
    "back",
    "be",
    "because",
    "been",
    "before",
    "behind",
    "below",
    "beside",
    "between",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "down",
    "during",
    "each",
    "even",
    "ever",
    "every",
    "for",
    "from",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "just",
    "like",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "near",
    "never",
    "no",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "onto",
    "or",
    "our",
    "out",
    "over",
    "quite",
    "rather",
    "she",
    "should",
    "since",
    "so",
    "some",
    "soon",
    "still",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "to",
    "today",
    "together",
    "tomorrow",
    "too",
    "toward",
    "towards",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "was",
    "we",
    "well",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "without",
    "would",
    "yesterday",
    "yet",
    "you",
    "your",
];

/// The swap of each listed word (lowercase), both directions.
#[derive(Debug, Clone)]
pub struct Swaps {
    map: HashMap<String, String>,
}

impl Swaps {
    /// The pairs of `text` (two words per line, `#` comments); `origin` names it in messages. A
    /// word listed twice is refused, except "her", whose two partners ("him", "his") are told
    /// apart by the rule above.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut map: HashMap<String, String> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<String> = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            let [a, b] = words.as_slice() else {
                return Err(input(format!(
                    "{origin}: line {}: expected two words (a male and a female form), got {line:?}",
                    n + 1
                )));
            };
            if a == b || !a.chars().chain(b.chars()).all(char::is_alphabetic) {
                return Err(input(format!(
                    "{origin}: line {}: expected two different words of letters, got {line:?}",
                    n + 1
                )));
            }
            for (from, to) in [(a, b), (b, a)] {
                if from == "her" {
                    continue; // Told apart by the next word.
                }
                if let Some(before) = map.insert(from.clone(), to.clone()).filter(|before| before != to) {
                    return Err(input(format!(
                        "{origin}: line {}: {from:?} is already paired with {before:?}; each word may have one partner (\"her\" excepted)",
                        n + 1
                    )));
                }
            }
        }
        if map.is_empty() {
            return Err(input(format!("{origin}: no word pairs")));
        }
        Ok(Swaps { map })
    }

    /// The bundled pairs.
    pub fn bundled() -> Self {
        Swaps::parse(BUNDLED_PAIRS, "the bundled CDA pairs").expect("the bundled pairs are valid")
    }

    /// The pairs of the file `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = mb_stats_files::text::read_to_string(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        Swaps::parse(&text, &path.display().to_string())
    }

    /// Whether "her" can be swapped (a pair lists it).
    fn swaps_her(&self) -> bool {
        self.map.get("him").is_some_and(|w| w == "her") || self.map.get("his").is_some_and(|w| w == "her")
    }

    /// `text` with every listed word swapped, or `None` when it has none.
    pub fn swap(&self, text: &str) -> Option<String> {
        let words = word_spans(text);
        let mut out = String::with_capacity(text.len() + 8);
        let mut last = 0;
        let mut swapped = false;
        for (k, &(start, end)) in words.iter().enumerate() {
            let word = &text[start..end];
            let lower = word.to_lowercase();
            let next = words.get(k + 1).filter(|&&(s, _)| text[end..s].trim().is_empty());
            let next_word = next.map(|&(s, e)| text[s..e].to_lowercase());
            let noun_follows = next_word.as_deref().is_some_and(|w| !FUNCTION_WORDS.contains(&w));
            let target = match lower.as_str() {
                "her" if self.swaps_her() => Some(if noun_follows { "his" } else { "him" }.to_string()),
                "his" if self.map.get("his").is_some_and(|w| w == "her") && !noun_follows => Some("hers".to_string()),
                "hers" if self.map.contains_key("his") => Some("his".to_string()),
                _ => self.map.get(&lower).cloned(),
            };
            if let Some(target) = target {
                out.push_str(&text[last..start]);
                out.push_str(&with_case_of(word, &target));
                last = end;
                swapped = true;
            }
        }
        out.push_str(&text[last..]);
        swapped.then_some(out)
    }

    /// Every text, and after each that has a listed word its swapped copy.
    pub fn augment(&self, texts: Vec<String>) -> Vec<String> {
        let mut out = Vec::with_capacity(texts.len() * 2);
        for text in texts {
            let copy = self.swap(&text);
            out.push(text);
            out.extend(copy);
        }
        out
    }
}

/// The byte spans of the words of `text`: runs of letters.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (start, c.is_alphabetic()) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    spans
}

/// `target` in the case of `word`: all capitals, a capital first letter, or lowercase.
fn with_case_of(word: &str, target: &str) -> String {
    let letters: Vec<char> = word.chars().collect();
    if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        return target.to_uppercase();
    }
    match letters.first() {
        Some(c) if c.is_uppercase() => {
            let mut chars = target.chars();
            chars
                .next()
                .map(|f| f.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        _ => target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_list_has_at_least_fifty_pairs_each_word_once() {
        let pairs = BUNDLED_PAIRS
            .lines()
            .map(|l| l.split('#').next().unwrap().trim())
            .filter(|l| !l.is_empty())
            .count();
        assert!(pairs >= 50, "{pairs} pairs");
        let swaps = Swaps::bundled();
        for (from, to) in &swaps.map {
            if to != "her" {
                assert_eq!(swaps.map.get(to), Some(from), "{from} -> {to} is two-sided");
            }
        }
    }

    #[test]
    fn words_swap_both_ways_with_their_case() {
        let swaps = Swaps::bundled();
        let cases = [
            ("He told his mother.", Some("She told her father.")),
            ("She told her father.", Some("He told his mother.")),
            ("THE KING AND THE QUEEN", Some("THE QUEEN AND THE KING")),
            ("The boys' uncle", Some("The girls' aunt")),
            ("Nothing here.", None),
            ("Shepherds watch sheep.", None),
            ("he's the man", Some("she's the woman")),
        ];
        for (text, expected) in cases {
            assert_eq!(swaps.swap(text).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn her_is_told_apart_by_the_next_word() {
        let swaps = Swaps::bundled();
        let cases = [
            ("I saw her.", "I saw him."),
            ("I gave her the book", "I gave him the book"),
            ("her book is red", "his book is red"),
            ("I like her very much", "I like him very much"),
            ("with her", "with him"),
            ("The book is his.", "The book is hers."),
            ("The book is hers.", "The book is his."),
            ("his dog", "her dog"),
            ("her own house", "his own house"),
            ("I told him to go", "I told her to go"),
        ];
        for (text, expected) in cases {
            assert_eq!(swaps.swap(text).as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn augmenting_keeps_every_text_and_adds_the_swapped_copies() {
        let swaps = Swaps::bundled();
        let out = swaps.augment(vec!["a man".into(), "a dog".into()]);
        assert_eq!(out, ["a man", "a woman", "a dog"]);
    }

    #[test]
    fn a_bad_list_is_refused_naming_the_line() {
        for (text, needle) in [
            ("he she\nking\n", "line 2: expected two words"),
            ("he she\nhe it\n", "line 2: \"he\" is already paired with \"she\""),
            ("he he\n", "line 1: expected two different words"),
            ("# nothing\n", "no word pairs"),
        ] {
            let error = Swaps::parse(text, "pairs.txt").unwrap_err().to_string();
            assert!(error.contains("pairs.txt") && error.contains(needle), "{error}");
        }
    }
}
