//! Helpers shared by the command-line tests: run the binary, check a refusal.
// Each test binary uses a subset of these helpers; the rest would warn as unused there.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `mb-stats` with `args` in the project folder (so `data/...` paths resolve).
pub fn mb_stats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

/// Asserts bad input: exit code 2 and one stderr line containing every needle.
pub fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    for needle in needles {
        assert!(err.contains(needle), "'{needle}' not in: {err}");
    }
}
