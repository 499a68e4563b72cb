//! The Hugging Face Hub and its local cache.
//!
//! The cache layout is the one Python's `huggingface_hub` uses (`models--owner--name/refs/<rev>`
//! holding a commit, `snapshots/<commit>/<file>`), at `HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, so downloads are shared with Python users. Downloads go through
//! hf-hub; reading the cache is done here so that pinned commits and offline use need no network.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

use mb_stats_files::error::{Error, Result, input};

/// A checkpoint on local disk, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCheckpoint {
    /// Directory with the checkpoint's files.
    pub dir: PathBuf,
    /// The commit the files come from (Hub checkpoints only).
    pub commit: Option<String>,
    /// The files this fetch downloaded into the Hugging Face cache (the only ones
    /// [`evict`] may remove).
    pub downloaded: Vec<String>,
}

/// Files a checkpoint needs, besides its weights; those marked optional may be absent.
const CHECKPOINT_FILES: [(&str, bool); 4] = [
    ("config.json", true),
    ("vocab.txt", false),
    ("tokenizer_config.json", false),
    ("tokenizer.json", false),
];

/// Whether `HF_HUB_OFFLINE` asks for offline use.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
}

/// The Hugging Face cache directory of model repos.
#[derive(Debug, Clone)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// The cache the environment points to (`HF_HUB_CACHE`, `HF_HOME`, or the default).
    pub fn from_env() -> Self {
        let root = if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
            PathBuf::from(dir)
        } else if let Some(home) = std::env::var_os("HF_HOME") {
            PathBuf::from(home).join("hub")
        } else {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            home.join(".cache").join("huggingface").join("hub")
        };
        HubCache { root }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `models--owner--name` of a repo.
    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The commit `revision` (default `main`) points to in the cache; a full commit hash is itself.
    pub fn cached_commit(&self, repo: &str, revision: Option<&str>) -> Option<String> {
        let revision = revision.unwrap_or("main");
        if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(revision.to_string());
        }
        let commit = std::fs::read_to_string(self.repo_dir(repo).join("refs").join(revision)).ok()?;
        Some(commit.trim().to_string())
    }

    /// The cached snapshot of `repo` at `revision`, with everything a checkpoint needs, or an error
    /// that names the missing file.
    pub fn cached_checkpoint(&self, repo: &str, revision: Option<&str>) -> Result<LocalCheckpoint> {
        let at = format!("{repo} (revision {})", revision.unwrap_or("main"));
        let Some(commit) = self.cached_commit(repo, revision) else {
            return Err(input(format!(
                "{at}: not in the Hugging Face cache at {} (offline); run once with network or set HF_HUB_CACHE",
                self.root.display()
            )));
        };
        let dir = self.repo_dir(repo).join("snapshots").join(&commit);
        let missing = |file: &str| {
            input(format!(
                "{at}: {file} is not in the Hugging Face cache ({}); offline, so not downloaded",
                dir.display()
            ))
        };
        if let Some((file, _)) = CHECKPOINT_FILES
            .iter()
            .find(|(file, required)| *required && !dir.join(file).is_file())
        {
            return Err(missing(file));
        }
        if !dir.join("vocab.txt").is_file() && !dir.join("tokenizer.json").is_file() {
            return Err(missing("vocab.txt"));
        }
        if !crate::weights::WEIGHT_FILES.iter().any(|f| dir.join(f).is_file()) {
            return Err(missing("model.safetensors or pytorch_model.bin"));
        }
        Ok(LocalCheckpoint {
            dir,
            commit: Some(commit),
            downloaded: Vec::new(),
        })
    }

    /// Whether a checkpoint is fully cached.
    pub fn is_cached(&self, repo: &str, revision: Option<&str>) -> bool {
        self.cached_checkpoint(repo, revision).is_ok()
    }

    /// Download what a checkpoint needs (configuration, vocabulary, one weight file — safetensors
    /// when the repo has it, never TensorFlow or Flax weights) into the cache, reusing cached files.
    pub fn download_checkpoint(&self, repo: &str, revision: Option<&str>) -> Result<LocalCheckpoint> {
        let at = format!("{repo} (revision {})", revision.unwrap_or("main"));
        let mut builder = ApiBuilder::new()
            .with_cache_dir(self.root.clone())
            .with_progress(true)
            .with_token(std::env::var("HF_TOKEN").ok());
        if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder.build().map_err(|e| input(format!("{at}: {e}")))?;
        let hub_repo = match revision {
            Some(rev) => Repo::with_revision(repo.to_string(), RepoType::Model, rev.to_string()),
            None => Repo::new(repo.to_string(), RepoType::Model),
        };
        let api_repo = api.repo(hub_repo);
        let info = api_repo.info().map_err(|e| {
            Error::named(format!(
                "{at}: cannot reach the Hub ({e}); use {{offline}} to work from the cache"
            ))
        })?;
        let listed = |file: &str| info.siblings.iter().any(|s| s.rfilename == file);
        let weights = crate::weights::WEIGHT_FILES.iter().find(|f| listed(f)).ok_or_else(|| {
            input(format!(
                "{at}: the repo has neither model.safetensors nor pytorch_model.bin"
            ))
        })?;
        let wanted = CHECKPOINT_FILES
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| listed(f))
            .chain([*weights]);
        let dir = self.repo_dir(repo).join("snapshots").join(&info.sha);
        let mut downloaded = Vec::new();
        for file in wanted {
            // hf-hub locks a blob while it downloads it and gives up on a held lock after 5 s:
            // another task of the array is fetching the same file, so wait for it (up to an hour)
            // and use its download.
            let mut waited = 0;
            while !dir.join(file).is_file() {
                match api_repo.download(file) {
                    Ok(_) => {
                        downloaded.push(file.to_string());
                        break;
                    }
                    Err(hf_hub::api::sync::ApiError::LockAcquisition(_)) if waited < 3600 => {
                        std::thread::sleep(std::time::Duration::from_secs(10));
                        waited += 10;
                    }
                    Err(e) => return Err(input(format!("{at}: downloading {file}: {e}"))),
                }
            }
        }
        let mut local = self.cached_checkpoint(repo, Some(&info.sha))?;
        local.downloaded = downloaded;
        Ok(local)
    }
}

/// The size a BERT-base checkpoint's download takes (`pytorch_model.bin` ≈ 440 MB, plus the small
/// files), for stating and checking disk space before a run: the Hub is not asked.
pub const BERT_BASE_DOWNLOAD_BYTES: u64 = 442_000_000;

/// Remove `files` of the cached snapshot `dir` (the links and the blobs they point to) from the
/// Hugging Face cache: what a run downloaded, once it no longer needs it. Returns the bytes
/// freed. Files not named are never touched.
pub fn evict(dir: &Path, files: &[String]) -> Result<u64> {
    let mut freed = 0;
    for file in files {
        let link = dir.join(file);
        let blob = std::fs::canonicalize(&link).ok().filter(|b| *b != link);
        let fail = |p: &Path, e: std::io::Error| Error::Output(format!("{}: cannot remove: {e}", p.display()));
        if let Some(blob) = &blob {
            freed += std::fs::metadata(blob).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(blob).map_err(|e| fail(blob, e))?;
        } else {
            freed += std::fs::metadata(&link).map(|m| m.len()).unwrap_or(0);
        }
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&link, e)),
            _ => {}
        }
    }
    Ok(freed)
}

pub use mb_stats_files::output::free_bytes;

/// A file of a Hub dataset repo, `OWNER/NAME/PATH` (PATH may contain `*`, which must match
/// exactly one file), from the cache or downloaded into it.
pub fn dataset_file(spec: &str, offline: bool) -> Result<PathBuf> {
    let mut files = dataset_files(spec, offline)?;
    match files.len() {
        1 => Ok(files.remove(0)),
        n => Err(input(format!(
            "hf://datasets/{spec}: matches {n} files ({}); name one",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The files of a Hub dataset repo matching `OWNER/NAME/PATH` (PATH may contain `*`s, each
/// within one folder), sorted by path, from the cache or downloaded into it; at least one.
pub fn dataset_files(spec: &str, offline: bool) -> Result<Vec<PathBuf>> {
    let mut parts = spec.splitn(3, '/');
    let (Some(owner), Some(name), Some(pattern)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(input(format!(
            "hf://datasets/{spec}: expected hf://datasets/OWNER/NAME/PATH"
        )));
    };
    let repo = format!("{owner}/{name}");
    let at = format!("hf://datasets/{spec}");
    let cache = HubCache::from_env();
    let repo_dir = cache.root.join(format!("datasets--{owner}--{name}"));
    let choose = |files: Vec<String>| -> Result<Vec<String>> {
        let mut matching: Vec<String> = files.into_iter().filter(|f| glob_match(pattern, f)).collect();
        matching.sort();
        match matching.is_empty() {
            true => Err(input(format!("{at}: no such file in the dataset repo"))),
            false => Ok(matching),
        }
    };
    if offline || offline_from_env() {
        let commit = std::fs::read_to_string(repo_dir.join("refs").join("main")).map_err(|_| {
            input(format!(
                "{at}: not in the Hugging Face cache at {} (offline)",
                cache.root.display()
            ))
        })?;
        let snapshot = repo_dir.join("snapshots").join(commit.trim());
        let files = choose(list_files(&snapshot, &snapshot))?;
        return Ok(files.iter().map(|f| snapshot.join(f)).collect());
    }
    let api = ApiBuilder::new()
        .with_cache_dir(cache.root.clone())
        .with_progress(true)
        .with_token(std::env::var("HF_TOKEN").ok())
        .build()
        .map_err(|e| input(format!("{at}: {e}")))?;
    let api_repo = api.repo(Repo::new(repo, RepoType::Dataset));
    let info = api_repo
        .info()
        .map_err(|e| Error::named(format!("{at}: cannot reach the Hub ({e}); use {{offline}}")))?;
    choose(info.siblings.into_iter().map(|s| s.rfilename).collect())?
        .iter()
        .map(|file| {
            api_repo
                .get(file)
                .map_err(|e| input(format!("{at}: downloading {file}: {e}")))
        })
        .collect()
}

/// Relative paths of the files under `dir`.
fn list_files(root: &Path, dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(list_files(root, &path));
        } else if let Ok(relative) = path.strip_prefix(root) {
            files.push(relative.to_string_lossy().into_owned());
        }
    }
    files
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters other than `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .take_while(|&i| !tail[..i].contains('/'))
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn eviction_removes_the_named_files_and_their_blobs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--google--multiberts-seed_0");
        let snapshot = repo.join("snapshots/abc");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        for (i, (file, size)) in [("config.json", 10), ("pytorch_model.bin", 1000), ("vocab.txt", 100)]
            .iter()
            .enumerate()
        {
            std::fs::write(repo.join(format!("blobs/b{i}")), vec![0u8; *size]).unwrap();
            std::os::unix::fs::symlink(format!("../../blobs/b{i}"), snapshot.join(file)).unwrap();
        }
        let freed = super::evict(&snapshot, &["pytorch_model.bin".to_string()]).unwrap();
        assert_eq!(freed, 1000);
        assert!(!snapshot.join("pytorch_model.bin").exists() && !repo.join("blobs/b1").exists());
        assert!(snapshot.join("config.json").is_file() && snapshot.join("vocab.txt").is_file());
        assert!(super::free_bytes(tmp.path()).is_some_and(|b| b > 0));
    }

    #[test]
    fn globs_match_within_one_folder() {
        assert!(glob_match("sst2/train-*.parquet", "sst2/train-00000-of-00001.parquet"));
        assert!(!glob_match(
            "sst2/train-*.parquet",
            "sst2/validation-00000-of-00001.parquet"
        ));
        assert!(!glob_match("*.parquet", "sst2/train.parquet"));
        assert!(glob_match("a.txt", "a.txt"));
    }
}
