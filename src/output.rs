//! Atomic output files: written to a temporary file beside the target, then renamed, so an
//! interrupted or failed command never leaves a half-written output.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `path` atomically with `write`, which receives the temporary file.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let fail = |e: std::io::Error| Error::Output(format!("{}: cannot write: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".mb-stats-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    write(temp.as_file_mut()).map_err(fail)?;
    temp.as_file_mut().sync_all().map_err(fail)?;
    temp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes))
}
