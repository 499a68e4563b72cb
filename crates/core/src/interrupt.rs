//! A cooperative stop for long computations: a caller that can be interrupted (the Python
//! package on Ctrl-C) sets the flag, and the replicate loops stop doing work. Whatever a stopped
//! computation returns is meaningless, so the caller that set the flag discards it.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running computation to stop.
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Clears the request (before a new computation starts).
pub fn clear() {
    REQUESTED.store(false, Ordering::Relaxed);
}

/// Whether a stop was requested. Time: one relaxed load.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
