//! What the experiment file hands a task kind: the file (for messages and relative paths), its
//! text, from which the kind reads its own `[task]` and `[data]` tables with its own types, the
//! task name, and the runtime values a task uses. A task never sees the rest of the experiment.

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use mb_stats_files::error::{Error, Result, input};

/// One experiment's task, before its data are read.
#[derive(Debug, Clone)]
pub struct TaskSource {
    /// The experiment file.
    pub path: PathBuf,
    /// `[task] kind`, for messages.
    pub kind: String,
    /// Its text.
    pub text: String,
    /// The `task` column's value: `[task] name`, or the file's stem.
    pub name: String,
    /// `[runtime] batch_tokens`: padded tokens per batch.
    pub batch_tokens: usize,
    /// `[runtime] dtype`, as the dtype products are computed in.
    pub compute: DType,
    /// No downloads: Hub data must already be in the cache.
    pub offline: bool,
}

/// The two tables a kind reads; the file's other tables are the experiment's.
#[derive(Deserialize)]
struct Sections<T, D> {
    task: T,
    data: D,
}

impl TaskSource {
    /// The kind's `[task]` and `[data]` tables as `T` and `D` (each refusing keys it does not
    /// know); an error names the file, the line and the key.
    pub fn sections<T: DeserializeOwned, D: DeserializeOwned>(&self) -> Result<(T, D)> {
        let sections: Sections<T, D> = parse(&self.path, &self.text, Some(&self.kind))?;
        Ok((sections.task, sections.data))
    }

    /// A path from the file, relative to the file's directory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        relative_to(&self.path, relative)
    }

    /// The error for setting `key` (`task.l2`) of this file, saying what was `expected`.
    pub fn bad(&self, key: &str, expected: impl std::fmt::Display) -> Error {
        input(format!("{}: {key}: {expected}", self.path.display()))
    }
}

/// `relative` as written in the file `file`: an absolute path as it is, else relative to the
/// file's directory.
pub fn relative_to(file: &Path, relative: &str) -> PathBuf {
    let p = Path::new(relative);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// `text` (the TOML of `path`) as `T`; an error names the file, the line (with its text) and the
/// key it concerns.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    parse(path, text, None)
}

/// As [`parse_toml`]; with `kind`, an unknown key is "not a setting of" that task kind.
fn parse<T: DeserializeOwned>(path: &Path, text: &str, kind: Option<&str>) -> Result<T> {
    toml::from_str(text).map_err(|mut e| {
        let at = e.span().map(|span| line_of(text, span.start)).unwrap_or_default();
        let mut message = e.message().replace('\n', " ");
        // Without its input, the error's text ends with the table or key it concerns ("in `task`").
        e.set_input(None);
        let rendered = e.to_string();
        let mut key = rendered
            .lines()
            .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
            .unwrap_or_default()
            .to_string();
        // serde: "unknown field `l2`, expected one of `kind`, `name`, …".
        if let Some((field, rest)) = message.strip_prefix("unknown field `").and_then(|m| m.split_once('`')) {
            let known = rest
                .trim_start_matches(", expected ")
                .trim_start_matches("one of ")
                .replace('`', "");
            let section = key.clone();
            key = format!("{section}.{field}");
            if let Some(kind) = kind {
                message = format!("not a setting of kind = \"{kind}\" (its [{section}] keys: {known})");
            }
        }
        let key = if key.is_empty() {
            String::new()
        } else {
            format!(" {key}:")
        };
        input(format!("{}{at}:{key} {message}", path.display()))
    })
}

/// ` line N (text of the line)` for a byte offset of `text`.
fn line_of(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let number = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or("").trim();
    format!(" line {number} ({line})")
}
