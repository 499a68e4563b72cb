//! Candle's errors as the one-line messages the user sees.

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
