//! Output files: checked before any work, then written atomically (a temporary file beside the
//! target, then a rename), so an interrupted or failed command never leaves a half-written
//! output, never overwrites one of its own inputs, and leaves files that others can read as the
//! umask allows (the temporary file's owner-only mode is not kept).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result, input};

/// Checks, before any work, that `path` (given by `flag`) can become an output file: its folder
/// exists, it is not a folder, and it is none of `inputs` (compared by file identity, so another
/// spelling, a symbolic link or a hard link of an input is refused too). Errors name the flag
/// and the path as the user gave it; they are input errors (exit code 2).
pub fn check_output(flag: &str, path: &Path, inputs: &[&Path]) -> Result<()> {
    if path.is_dir() {
        return Err(input(format!(
            "{flag} {}: is a folder, expected a file name",
            path.display()
        )));
    }
    let dir = folder_of(path);
    if !dir.is_dir() {
        return Err(input(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    if let Some(same) = inputs.iter().find(|i| same_file(path, i)) {
        return Err(input(format!(
            "{flag} {}: is the input {}; write the output to another file",
            path.display(),
            same.display()
        )));
    }
    check_name(flag, path)?;
    check_writable(flag, path, dir)
}

/// The longest file name the common file systems allow, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// Refuses a file name longer than file systems allow (found only when the output is renamed
/// into place, after the work, otherwise).
fn check_name(flag: &str, path: &Path) -> Result<()> {
    match path.file_name().map(|n| n.len()) {
        Some(n) if n > MAX_NAME_BYTES => Err(input(format!(
            "{flag} {}: the file name is {n} bytes; file systems allow {MAX_NAME_BYTES}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Creates and removes a temporary file in `dir`, where the output will be written, so that a
/// folder that cannot be written is refused before any work instead of after it.
fn check_writable(flag: &str, shown: &Path, dir: &Path) -> Result<()> {
    temp_file_in(dir, ".tmp").map(drop).map_err(|e| {
        input(format!(
            "{flag} {}: cannot write in {}: {}",
            shown.display(),
            dir.display(),
            io_message(&e)
        ))
    })
}

/// Checks, before any work, that `dir` (given by `flag`) can become an output folder: it is a
/// folder or does not exist yet, and it is not the place of any of `inputs`.
pub fn check_output_dir(flag: &str, dir: &Path, inputs: &[&Path]) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(input(format!("{flag} {}: is a file, expected a folder", dir.display())));
    }
    if let Some(same) = inputs.iter().find(|i| same_file(dir, i)) {
        return Err(input(format!(
            "{flag} {}: is the input {}; choose another folder",
            dir.display(),
            same.display()
        )));
    }
    check_name(flag, dir)?;
    // The folder, or the nearest existing folder above it, where it will be created.
    let mut existing = dir;
    while !existing.is_dir() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => {
                existing = Path::new(".");
                break;
            }
        }
    }
    check_writable(flag, dir, existing)
}

/// Whether `a` and `b` name the same existing file (same device and inode on Unix).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => identity(&ma, a) == identity(&mb, b),
        _ => false,
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata, _: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata, path: &Path) -> std::path::PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A temporary file in `dir` for an atomic write, created with mode 0666 less the umask (as a
/// plain `File::create` would be), not the owner-only mode temporary files get by default: the
/// rename keeps the mode, and colleagues on a shared folder must be able to read the result.
pub fn temp_file_in(dir: &Path, suffix: &str) -> std::io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".mb-stats-").suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Gives `path` the mode a file created in its folder now gets (0666 less the umask): for files a
/// library wrote with owner-only permissions (safetensors writes a private temporary file and
/// renames it).
pub fn give_plain_mode(path: &Path) -> std::io::Result<()> {
    let probe = temp_file_in(folder_of(path), ".probe")?;
    let permissions = probe.as_file().metadata()?.permissions();
    std::fs::set_permissions(path, permissions)
}

/// Writes `path` atomically with `write`, which receives the temporary file. On any error the
/// temporary file is removed and `path` is untouched.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let fail = |e: std::io::Error| {
        let full = free_bytes(folder_of(path)).is_some_and(|free| free < FULL_BELOW_BYTES);
        let message = match full && e.kind() != std::io::ErrorKind::StorageFull {
            true => format!("the disk is full ({e})"),
            false => io_message(&e),
        };
        Error::Output(format!("{}: cannot write: {message}", path.display()))
    };
    let mut temp = temp_file_in(folder_of(path), ".tmp").map_err(fail)?;
    write(temp.as_file_mut()).map_err(fail)?;
    temp.as_file_mut().sync_all().map_err(fail)?;
    temp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes))
}

/// Bytes available to this user on the file system holding `path` (or its nearest existing
/// ancestor); `None` where it cannot be told.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let name = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer of the right type; read only on success.
    let stat = unsafe {
        if libc::statvfs(name.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Free bytes below which a failed write is taken for a full disk (writers such as Parquet's
/// report it as `Invalid thrift: transport error`).
const FULL_BELOW_BYTES: u64 = 1 << 20;

/// An I/O error's message, saying plainly when the disk is full (writers that wrap the error,
/// such as Parquet's, otherwise hide it).
pub fn io_message(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::StorageFull || e.to_string().contains("No space left on device") {
        "the disk is full (no space left on device)".to_string()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn atomic_files_get_the_umask_mode_not_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        atomic_write(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // What File::create gives under the same umask.
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let expected = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected);
        assert_ne!(mode, 0o600, "umask {expected:o} should leave group/other bits");
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let input_file = dir.path().join("r.parquet");
        std::fs::write(&input_file, b"x").unwrap();
        let other_spelling = dir.path().join(".").join("r.parquet");
        let e = check_output("-o", &other_spelling, &[&input_file]).unwrap_err();
        assert!(e.to_string().contains("is the input"), "{e}");
        assert!(check_output("-o", &dir.path().join("new.csv"), &[&input_file]).is_ok());
        let e = check_output("-o", &dir.path().join("nodir/x.csv"), &[]).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = check_output("-o", dir.path(), &[]).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
    }
}
