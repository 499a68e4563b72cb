//! User-facing errors: one line each, naming the file, column or flag and what was expected.

use std::fmt;

/// An error that ends a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad input (file, column, value, flag): exit code 2.
    Input(String),
    /// Writing an output failed (disk full, permissions): exit code 1.
    Output(String),
    /// Bad input whose message names settings as `{name}` (`{nboot} 1: expected at least 2`):
    /// library code does not know whether the user wrote a flag or a key of a file, so the
    /// caller spells them with [`Error::spelled`] (`--nboot`, `analysis.nboot`); exit code 2.
    Named(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Named(_) => 2,
            Error::Output(_) => 1,
        }
    }
}

impl Error {
    /// An input error whose `message` names settings as `{name}` (see [`Error::Named`]).
    pub fn named(message: impl fmt::Display) -> Error {
        Error::Named(message.to_string())
    }

    /// This error with every `{name}` of a [`Error::Named`] message spelled by `spell`; other
    /// errors unchanged.
    pub fn spelled(self, spell: impl Fn(&str) -> String) -> Error {
        match self {
            Error::Named(message) => Error::Input(spell_names(&message, spell)),
            other => other,
        }
    }
}

/// `message` with each `{name}` (a lower-case identifier in braces) replaced by `spell(name)`:
/// how an edge spells the settings a library message names (as flags, keys or arguments).
pub fn spell_names(message: &str, spell: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('{') {
        let name_len = rest[open + 1..].find('}').filter(|&n| {
            n > 0
                && rest[open + 1..open + 1 + n]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
        });
        out.push_str(&rest[..open]);
        match name_len {
            Some(n) => {
                out.push_str(&spell(&rest[open + 1..open + 1 + n]));
                rest = &rest[open + n + 2..];
            }
            None => {
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    out + rest
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) | Error::Output(m) => f.write_str(m),
            Error::Named(m) => f.write_str(&spell_names(m, str::to_string)),
        }
    }
}

impl std::error::Error for Error {}

/// An I/O error while writing (stdout, an output file) is an output error.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Output(e.to_string())
    }
}

/// Shorthand for results of commands.
pub type Result<T> = std::result::Result<T, Error>;

/// An input error from anything printable.
pub fn input(message: impl fmt::Display) -> Error {
    Error::Input(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_settings_are_spelled_by_the_caller() {
        let e = Error::named("{nboot} 1: at least 2 (see {threshold_abs}; {not a name} and {})");
        assert_eq!(
            e.to_string(),
            "nboot 1: at least 2 (see threshold_abs; {not a name} and {})"
        );
        let flag = |name: &str| format!("--{}", name.replace('_', "-"));
        assert_eq!(
            e.clone().spelled(flag),
            Error::Input("--nboot 1: at least 2 (see --threshold-abs; {not a name} and {})".into())
        );
        assert_eq!(e.exit_code(), 2);
        assert_eq!(Error::Input("x".into()).spelled(flag), Error::Input("x".into()));
    }
}
