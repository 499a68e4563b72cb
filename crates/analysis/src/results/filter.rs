//! Row filters of the command line: `column=value[,column=value]`, all conditions must hold.

use std::fmt;

use super::ResultsTable;

/// A column a filter or `--by` may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// `group`.
    Group,
    /// `seed`.
    Seed,
    /// `step`.
    Step,
    /// `run`.
    Run,
    /// `task`.
    Task,
    /// `layer`.
    Layer,
}

impl Key {
    /// Every filterable column.
    pub const ALL: [Key; 6] = [Key::Group, Key::Seed, Key::Step, Key::Run, Key::Task, Key::Layer];

    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Key::Group => "group",
            Key::Seed => "seed",
            Key::Step => "step",
            Key::Run => "run",
            Key::Task => "task",
            Key::Layer => "layer",
        }
    }

    /// Parses a column name.
    pub fn parse(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Parses a column that splits a table into cells of separate analyses (`--by`): task,
    /// layer or step.
    pub fn cell(name: &str) -> Result<Key, String> {
        match Key::parse(name) {
            Some(k @ (Key::Task | Key::Layer | Key::Step)) => Ok(k),
            _ => Err("expected task, layer or step".to_string()),
        }
    }

    /// Row `row`'s value of this column as text (`None` for null or an absent column; a null
    /// `run` is 0 as the schema says).
    pub fn value(self, table: &ResultsTable, row: usize) -> Option<String> {
        let int = |c: &Option<Vec<Option<i64>>>| c.as_ref().and_then(|v| v[row]).map(|x| x.to_string());
        match self {
            Key::Group => Some(table.group[row].to_string()),
            Key::Seed => Some(table.seed[row].to_string()),
            Key::Step => int(&table.step),
            Key::Run => Some(int(&table.run).unwrap_or_else(|| "0".into())),
            Key::Task => table.task.as_ref().and_then(|v| v.get(row)).map(str::to_string),
            Key::Layer => int(&table.layer),
        }
    }

    /// Whether rows `a` and `b` have the same value of this column (no allocation).
    pub fn same(self, table: &ResultsTable, a: usize, b: usize) -> bool {
        let int = |c: &Option<Vec<Option<i64>>>| c.as_ref().is_none_or(|v| v[a] == v[b]);
        match self {
            Key::Group => table.group[a] == table.group[b],
            Key::Seed => table.seed[a] == table.seed[b],
            Key::Step => int(&table.step),
            Key::Run => int(&table.run),
            Key::Task => table.task.as_ref().is_none_or(|v| v.get(a) == v.get(b)),
            Key::Layer => int(&table.layer),
        }
    }
}

/// One `column=value` condition, typed so that matching allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Condition {
    Text(Key, Option<String>),
    Int(Key, Option<i64>),
}

/// A conjunction of `column=value` conditions. An empty value matches nulls. A value in double
/// quotes is taken as written, commas and surrounding spaces included (`group=" a, b"`);
/// otherwise values are trimmed and a comma starts the next condition.
#[derive(Clone, Debug, PartialEq, Eq, serde_with::DeserializeFromStr)]
pub struct Filter {
    text: String,
    conditions: Vec<Condition>,
}

impl Filter {
    /// Parses `column=value[,column=value]`; the error names what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let names: Vec<_> = Key::ALL.iter().map(|k| k.name()).collect();
        let conditions = split_outside_quotes(text)
            .into_iter()
            .map(|part| {
                let (column, value) = part
                    .split_once('=')
                    .ok_or_else(|| format!("'{part}' is not column=value"))?;
                let key = Key::parse(mb_stats_files::text::strip_bom(column.trim()).trim())
                    .ok_or_else(|| format!("unknown column '{column}': expected one of {}", names.join(", ")))?;
                let trimmed = value.trim();
                let (value, quoted) = match trimmed.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(quoted) if trimmed.len() >= 2 => (quoted, true),
                    _ if trimmed.contains('"') => {
                        return Err(format!("{}={value}: unbalanced double quote", key.name()));
                    }
                    _ => (trimmed, false),
                };
                match key {
                    // `group=` is a missing value; `group=""` the empty text.
                    Key::Group | Key::Task => Ok(Condition::Text(
                        key,
                        Some(value.to_string()).filter(|v| quoted || !v.is_empty()),
                    )),
                    _ if value.is_empty() => Ok(Condition::Int(key, None)),
                    _ => value
                        .parse::<i64>()
                        .map(|v| Condition::Int(key, Some(v)))
                        .map_err(|_| format!("{}={value}: {} is an integer column", key.name(), key.name())),
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            text: text.to_string(),
            conditions,
        })
    }

    /// The columns the conditions name.
    pub fn keys(&self) -> Vec<Key> {
        self.conditions
            .iter()
            .map(|c| match c {
                Condition::Text(k, _) | Condition::Int(k, _) => *k,
            })
            .collect()
    }

    /// Per row of `table`, whether it satisfies every condition (text values are looked up once
    /// and rows compared by code: a filter runs over every row of a design).
    pub fn mask(&self, table: &ResultsTable) -> Vec<bool> {
        let mut mask = vec![true; table.len()];
        let int = |c: &Option<Vec<Option<i64>>>, row: usize| c.as_ref().and_then(|v| v[row]);
        for condition in &self.conditions {
            let holds: Vec<bool> = match condition {
                Condition::Text(Key::Group, v) => table.group.equal_to(v.as_deref()),
                Condition::Text(_, v) => match &table.task {
                    Some(task) => task.equal_to(v.as_deref()),
                    None => vec![v.is_none(); table.len()],
                },
                Condition::Int(key, v) => (0..table.len())
                    .map(|row| match key {
                        Key::Seed => *v == Some(table.seed[row]),
                        Key::Step => *v == int(&table.step, row),
                        Key::Run => *v == Some(int(&table.run, row).unwrap_or(0)),
                        _ => *v == int(&table.layer, row),
                    })
                    .collect(),
            };
            mask.iter_mut().zip(holds).for_each(|(m, h)| *m &= h);
        }
        mask
    }
}

/// `text` split at the commas that are not inside double quotes.
fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Filter::parse(text)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_keep_commas_and_spaces() {
        let f = Filter::parse("group=\" a, b\",seed=3").unwrap();
        assert_eq!(
            f.conditions,
            vec![
                Condition::Text(Key::Group, Some(" a, b".into())),
                Condition::Int(Key::Seed, Some(3))
            ]
        );
        assert!(Filter::parse("group=\"a").is_err());
        assert_eq!(Filter::parse("\u{feff}group=x").unwrap().keys(), vec![Key::Group]);
    }

    /// An empty-string group can be selected (`group=""`); `group=` stays "missing".
    #[test]
    fn an_empty_text_is_quoted_and_a_missing_value_is_bare() {
        let quoted = Filter::parse("group=\"\"").unwrap();
        assert_eq!(
            quoted.conditions,
            vec![Condition::Text(Key::Group, Some(String::new()))]
        );
        let bare = Filter::parse("task=").unwrap();
        assert_eq!(bare.conditions, vec![Condition::Text(Key::Task, None)]);
    }
}
