//! JSON: `{"method": {...}, "rows": [{column: value}]}` with numbers as numbers and empty cells
//! as null.

use serde_json::{Map, Value as JsonValue, json};

use super::{COLUMNS, Exporter, Value, method_line, values};
use crate::analysis::Report;

/// The JSON exporter.
pub struct Json;

impl Exporter for Json {
    fn serialize(&self, report: &Report) -> Vec<u8> {
        let m = &report.method;
        let rows: Vec<JsonValue> = report
            .rows
            .iter()
            .map(|row| {
                let object: Map<String, JsonValue> = COLUMNS
                    .iter()
                    .zip(values(row, m))
                    .map(|(c, v)| {
                        let v = match v {
                            Value::Text(s) => JsonValue::from(s),
                            Value::Number(x) => JsonValue::from(x),
                            Value::Count(n) => JsonValue::from(n),
                            Value::Empty => JsonValue::Null,
                        };
                        (c.to_string(), v)
                    })
                    .collect();
                JsonValue::Object(object)
            })
            .collect();
        let document = json!({
            "method": {
                "description": method_line(m),
                "metric": m.metric.name(),
                "nboot": m.nboot,
                "confidence": m.confidence,
                "interval": m.interval.name(),
                "sampling": m.sampling.name(),
                "resample_unit": m.unit(),
                "pairing": m.pairing.map(|p| p.to_string()),
                "alternative": m.alternative.map(|a| a.name()),
                "rng_seed": m.rng_seed,
                "tool": format!("mb-stats {}", env!("CARGO_PKG_VERSION")),
            },
            "rows": rows,
        });
        let mut bytes = serde_json::to_vec_pretty(&document).expect("JSON of plain values");
        bytes.push(b'\n');
        bytes
    }
}
