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

/// Shorthand for results of commands.
pub type Result<T> = std::result::Result<T, Error>;

/// A candle error's message on one line: without the backtrace candle attaches when
/// `RUST_BACKTRACE` is set.
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        candle_core::Error::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        other => other.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

/// An input error from anything printable.
pub fn input(message: impl fmt::Display) -> Error {
    Error::Input(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_messages_lose_their_backtrace() {
        let e = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("no such device".into()).context("opening cuda:1")),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(e.to_string().lines().count() > 1, "candle prints the backtrace");
        assert_eq!(candle_message(&e), "opening cuda:1: no such device");
    }
}
