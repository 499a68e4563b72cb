//! User-facing errors: one line each, naming the file, column or flag and what was expected.

use std::fmt;

/// An error that ends a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad input (file, column, value, flag): exit code 2.
    Input(String),
    /// Writing an output failed (disk full, permissions): exit code 1.
    Output(String),
    /// A setting's value that could be checked only late, e.g. a layer the loaded model does not
    /// have (exit code 2). `setting` is its plain name (`layers`); the binary, which knows the
    /// flag or key the user wrote, renames it with [`Error::naming`].
    Setting {
        /// The setting's plain name.
        setting: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Setting { .. } => 2,
            Error::Output(_) => 1,
        }
    }
}

impl Error {
    /// A late error about `setting` (see [`Error::Setting`]).
    pub fn setting(setting: &'static str, value: impl fmt::Display, problem: impl fmt::Display) -> Error {
        Error::Setting {
            setting,
            value: value.to_string(),
            problem: problem.to_string(),
        }
    }

    /// This error with `setting` spelled as the user wrote it (`--layers`); other errors unchanged.
    pub fn naming(self, setting: &str, written: &str) -> Error {
        match self {
            Error::Setting {
                setting: s,
                value,
                problem,
            } if s == setting => Error::Input(format!("{written} {value}: {problem}")),
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) | Error::Output(m) => f.write_str(m),
            Error::Setting {
                setting,
                value,
                problem,
            } => write!(f, "{setting} {value}: {problem}"),
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
