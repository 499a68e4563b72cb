//! One per-sample record of lm-evaluation-harness (`--log_samples`), in every version's
//! spelling: v0.4.3+ writes every leaf of `resps`/`filtered_resps` as a string
//! (`["-2.31", "False"]`) and `arguments` as `{"gen_args_0": {"arg_0": …, "arg_1": …}}`;
//! v0.4.0–0.4.2 writes numbers and lists. Only the fields the results table needs are decoded:
//! the document and the prompts are skipped without being copied (they are most of the bytes).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A per-sample metric value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A number (acc, acc_norm, exact_match, …; booleans as 0/1).
    Number(f64),
    /// A (gold, prediction) pair of class ids that the harness aggregates at corpus level (f1,
    /// mcc): kept so the metric can be recomputed.
    Pair(i64, i64),
}

/// The fields of one record that become a row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// The document's index in the task (the example id).
    pub doc_id: Option<i64>,
    /// Hash of the document (absent before v0.4.2).
    pub doc_hash: Option<String>,
    /// The filter the responses went through (`none` when not written).
    pub filter: Option<String>,
    /// The gold target as written (`"2"`, `2`, an answer text, a list).
    pub target: Option<Value>,
    /// The continuation of each request (`arg_1`), decoded only when the target is not an index.
    pub continuations: Option<Vec<String>>,
    /// The filtered responses (per choice `[log-likelihood, is-greedy]`, or generated text).
    pub filtered_resps: Option<Value>,
    /// The names of the record's metrics (`metrics`, v0.4.3+).
    pub listed_metrics: Option<Vec<String>>,
    /// Every numeric or pair-valued field outside the harness's own keys, in file order.
    pub metrics: Vec<(String, MetricValue)>,
}

impl Record {
    /// Parses one JSON object (a line of a `.jsonl` file); the error is serde's, with column.
    /// Python's `json.dumps` writes `NaN` and `Infinity` (a document with a missing float): those
    /// are read as null.
    pub fn parse(line: &str) -> serde_json::Result<Record> {
        from_python_json(line)
    }

    /// For a multiple-choice record (two or more choices scored by log-likelihood), the gold
    /// choice and the predicted one; `None` for a single log-likelihood or generated text.
    pub fn choice(&self) -> Option<(Option<i64>, i64)> {
        let prediction = self.argmax_choice()?;
        Some((self.gold(), prediction))
    }

    /// The gold class: the target as an index, or the choice whose continuation is the target
    /// text (the harness's `choices.index(gold)`), or `None` (several golds, free text).
    fn gold(&self) -> Option<i64> {
        match self.target.as_ref()? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
                let choices = self.continuations.as_ref()?;
                choices.iter().position(|c| c.trim() == s.trim()).map(|i| i as i64)
            }),
            _ => None,
        }
    }

    /// The choice with the highest filtered log-likelihood (the first of tied ones, as
    /// `numpy.argmax`), when there are two or more.
    fn argmax_choice(&self) -> Option<i64> {
        let Value::Array(choices) = self.filtered_resps.as_ref()? else {
            return None;
        };
        if choices.len() < 2 {
            return None;
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, choice) in choices.iter().enumerate() {
            let ll = match choice {
                Value::Array(pair) if pair.len() == 2 => number(&pair[0])?,
                Value::Number(n) => n.as_f64()?,
                _ => return None,
            };
            if best.is_none_or(|(_, b)| ll > b) {
                best = Some((i, ll));
            }
        }
        best.map(|(i, _)| i as i64)
    }
}

/// JSON as Python's `json.dumps` writes it: `NaN`, `Infinity` and `-Infinity` (a document's
/// missing float) are read as null. The text is rewritten only when plain JSON fails.
pub fn from_python_json<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_str(text).or_else(|e| match python_constants_as_null(text) {
        Some(fixed) => serde_json::from_str(&fixed),
        None => Err(e),
    })
}

/// `text` with Python's `NaN`, `Infinity` and `-Infinity` outside strings replaced by `null`, or
/// `None` when it has none.
fn python_constants_as_null(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push_str("null");
            rest = &rest[token.len()..];
            changed = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

/// A number written as a number or as its text (`"-2.31"`, as v0.4.3+ writes it).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The harness's own keys that are never metrics.
const OWN_KEYS: [&str; 5] = ["doc", "resps", "prompt_hash", "target_hash", "task_name"];

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (one sample)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut record = Record::default();
        let mut arguments_needed = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "doc_id" => record.doc_id = Some(map.next_value::<DocId>()?.0),
                "doc_hash" => record.doc_hash = Some(map.next_value()?),
                "filter" => record.filter = Some(map.next_value()?),
                "target" => {
                    let target: Value = map.next_value()?;
                    arguments_needed = !matches!(&target, Value::Number(_))
                        && !matches!(&target, Value::String(s) if s.trim().parse::<i64>().is_ok());
                    record.target = Some(target);
                }
                // The prompts are most of a record: decoded only to match a text target.
                "arguments" if arguments_needed => {
                    record.continuations = continuations(&map.next_value::<Value>()?);
                }
                "arguments" => {
                    map.next_value::<IgnoredAny>()?;
                }
                "filtered_resps" => record.filtered_resps = Some(map.next_value()?),
                "metrics" => record.listed_metrics = Some(map.next_value()?),
                own if OWN_KEYS.contains(&own) => {
                    map.next_value::<IgnoredAny>()?;
                }
                name => {
                    if let Loose::Metric(value) = map.next_value::<Loose>()? {
                        record.metrics.push((name.to_string(), value));
                    }
                }
            }
        }
        if let Some(listed) = &record.listed_metrics {
            record.metrics.retain(|(name, _)| listed.contains(name));
        }
        Ok(record)
    }
}

/// The continuation (`arg_1`) of each request, in both spellings of `arguments`.
fn continuations(arguments: &Value) -> Option<Vec<String>> {
    let second = |request: &Value| -> Option<String> {
        match request {
            Value::Array(args) => args.get(1)?.as_str().map(str::to_string),
            Value::Object(args) => args.get("arg_1")?.as_str().map(str::to_string),
            _ => None,
        }
    };
    match arguments {
        Value::Array(requests) => requests.iter().map(second).collect(),
        Value::Object(requests) => {
            // gen_args_0, gen_args_1, … in index order (gen_args_10 after gen_args_9).
            let mut indexed: Vec<(usize, &Value)> = requests
                .iter()
                .map(|(k, v)| Some((k.strip_prefix("gen_args_")?.parse().ok()?, v)))
                .collect::<Option<_>>()?;
            indexed.sort_by_key(|(i, _)| *i);
            indexed.into_iter().map(|(_, v)| second(v)).collect()
        }
        _ => None,
    }
}

/// A document id: an integer, or an integer written as text.
struct DocId(i64);

impl<'de> Deserialize<'de> for DocId {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) if n.as_i64().is_some() => Ok(DocId(n.as_i64().unwrap_or_default())),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => Ok(DocId(s.trim().parse().unwrap_or_default())),
            other => Err(de::Error::custom(format!("doc_id is {other}, expected an integer"))),
        }
    }
}

/// A field value outside the harness's own keys: a metric, or anything else (skipped unread).
enum Loose {
    Metric(MetricValue),
    Other,
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Metric(MetricValue::Number(f64::from(u8::from(v)))))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::Metric(MetricValue::Number(v as f64)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::Metric(MetricValue::Number(v as f64)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Metric(MetricValue::Number(v)))
    }

    fn visit_str<E>(self, _: &str) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut values = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            values.push(v);
        }
        let class = |v: &Value| match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        };
        Ok(match values.as_slice() {
            [gold, prediction] => match (class(gold), class(prediction)) {
                (Some(g), Some(p)) => Loose::Metric(MetricValue::Pair(g, p)),
                _ => Loose::Other,
            },
            _ => Loose::Other,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v043_multiple_choice_record() {
        let line = r#"{"doc_id": 7, "doc": {"q": "x", "choices": ["a", "b"]}, "target": "1",
            "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": " a"}, "gen_args_1": {"arg_0": "Q", "arg_1": " b"}},
            "resps": [[["-3.5", "False"]], [["-1.25", "True"]]], "filtered_resps": [["-3.5", "False"], ["-1.25", "True"]],
            "filter": "none", "metrics": ["acc", "acc_norm"], "doc_hash": "h7", "prompt_hash": "p", "target_hash": "t",
            "acc": 1.0, "acc_norm": 0.0}"#;
        let r = Record::parse(line).unwrap();
        assert_eq!(r.doc_id, Some(7));
        assert_eq!(r.choice(), Some((Some(1), 1)));
        assert_eq!(r.doc_hash.as_deref(), Some("h7"));
        assert_eq!(
            r.metrics,
            vec![
                ("acc".to_string(), MetricValue::Number(1.0)),
                ("acc_norm".to_string(), MetricValue::Number(0.0))
            ]
        );
        assert_eq!(r.continuations, None, "an index target never decodes the prompts");
    }

    #[test]
    fn a_v040_record_with_a_text_target_and_a_pair_metric() {
        let line = r#"{"doc_id": 3, "doc": {}, "target": "b",
            "arguments": [["Q", " a"], ["Q", " b"], ["Q", " c"]],
            "resps": [[[-2.0, false]], [[-1.0, true]], [[-1.0, false]]],
            "filtered_resps": [[-2.0, false], [-1.0, true], [-1.0, false]],
            "mcc": [1, 1], "bleu": ["x", "y"], "note": "free text"}"#;
        let r = Record::parse(line).unwrap();
        // The target text is the second choice; the first of tied maxima is predicted.
        assert_eq!(r.choice(), Some((Some(1), 1)));
        assert_eq!(r.metrics, vec![("mcc".to_string(), MetricValue::Pair(1, 1))]);
        assert_eq!(r.filter, None);
    }

    #[test]
    fn unlisted_fields_are_not_metrics_and_generated_text_has_no_choice() {
        let line = r#"{"doc_id": "12", "target": "42", "filtered_resps": ["The answer is 42"],
            "filter": "strict-match", "metrics": ["exact_match"], "exact_match": 1.0, "extra_number": 3}"#;
        let r = Record::parse(line).unwrap();
        assert_eq!(r.doc_id, Some(12));
        assert_eq!(r.choice(), None);
        let single =
            Record::parse(r#"{"doc_id": 1, "target": " word", "filtered_resps": [["-1.5", "True"]]}"#).unwrap();
        assert_eq!(single.choice(), None, "one log-likelihood is not a choice");
        assert_eq!(r.metrics, vec![("exact_match".to_string(), MetricValue::Number(1.0))]);
    }

    #[test]
    fn python_nan_and_infinity_outside_strings_are_null() {
        let line = r#"{"doc_id": 1, "doc": {"x": NaN, "y": -Infinity, "s": "NaN \" Infinity"}, "acc": 1.0}"#;
        let r = Record::parse(line).unwrap();
        assert_eq!(r.metrics, vec![("acc".to_string(), MetricValue::Number(1.0))]);
        let fixed = python_constants_as_null(line).unwrap();
        assert!(
            fixed.contains(r#""x": null, "y": null"#) && fixed.contains(r#""NaN \" Infinity""#),
            "{fixed}"
        );
        assert_eq!(python_constants_as_null(r#"{"a": "NaN"}"#), None);
    }

    #[test]
    fn a_bad_doc_id_is_an_error() {
        assert!(Record::parse(r#"{"doc_id": [1]}"#).is_err());
        assert!(Record::parse("[1, 2]").is_err());
    }
}
