//! User-facing errors: one line each, naming the file, column or flag and what was expected.

use std::fmt;

/// An error that ends a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad input (file, column, value, flag): exit code 2.
    Input(String),
    /// Writing an output failed (disk full, permissions): exit code 1.
    Output(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Output(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) | Error::Output(m) => f.write_str(m),
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
