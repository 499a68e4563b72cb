//! JSON: the document, pretty-printed with sorted keys, numbers as numbers and empty values as
//! null.

use serde_json::{Map, Value as JsonValue};

use super::Exporter;
use super::table::{Table, Value};

/// The JSON exporter.
pub struct Json;

/// A raw value as JSON.
fn json(value: &Value) -> JsonValue {
    match value {
        Value::Text(s) => JsonValue::from(s.as_str()),
        Value::Number(x) => JsonValue::from(*x),
        Value::Count(n) => JsonValue::from(*n),
        Value::Integer(n) => JsonValue::from(*n),
        Value::Empty => JsonValue::Null,
        Value::List(items) => JsonValue::Array(items.iter().map(json).collect()),
        Value::Record(fields) => object(fields),
    }
}

/// Fields as a JSON object.
fn object(fields: &[(&str, Value)]) -> JsonValue {
    let map: Map<String, JsonValue> = fields.iter().map(|(k, v)| (k.to_string(), json(v))).collect();
    JsonValue::Object(map)
}

impl Exporter for Json {
    fn serialize(&self, table: &Table) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(&object(&table.document)).expect("JSON of plain values");
        bytes.push(b'\n');
        bytes
    }
}
