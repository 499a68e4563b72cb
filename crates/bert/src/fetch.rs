//! Fetching checkpoints: a local directory or a Hub repo (through the standard Hugging Face cache,
//! [`crate::hub`]).

use std::path::{Path, PathBuf};

use crate::hub::LocalCheckpoint;
use mb_stats_files::error::{Result, input};

/// Where a checkpoint comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSource {
    /// A directory on disk with `config.json`, vocabulary and weights.
    Local(PathBuf),
    /// A Hub model repo, at a branch, tag or commit (`None` = `main`).
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit (`None` = `main`).
        revision: Option<String>,
    },
}

impl CheckpointSource {
    /// `path/to/dir`, `owner/name` or `owner/name@revision`: an existing directory wins.
    pub fn parse(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(CheckpointSource::Local(path.to_path_buf()));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev.to_string())),
            None => (spec, None),
        };
        let valid =
            |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        match repo.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) && revision.as_deref() != Some("") => {
                Ok(CheckpointSource::Hub {
                    repo: repo.to_string(),
                    revision,
                })
            }
            _ => Err(input(format!(
                "model {spec:?}: not a directory and not a Hub repo id (expected owner/name or owner/name@revision)"
            ))),
        }
    }
}

/// Make `source` available locally: a directory as it is, a Hub repo from the cache or, unless
/// `offline`, downloaded into it.
pub fn fetch(source: &CheckpointSource, offline: bool) -> Result<LocalCheckpoint> {
    match source {
        CheckpointSource::Local(dir) => {
            if !dir.join("config.json").is_file() {
                return Err(input(format!(
                    "{}: no config.json; not a checkpoint directory",
                    dir.display()
                )));
            }
            Ok(LocalCheckpoint {
                dir: dir.clone(),
                commit: None,
                downloaded: Vec::new(),
            })
        }
        CheckpointSource::Hub { repo, revision } => {
            let hub = crate::hub::HubCache::from_env();
            if offline || crate::hub::offline_from_env() {
                hub.cached_checkpoint(repo, revision.as_deref())
            } else {
                hub.download_checkpoint(repo, revision.as_deref())
            }
        }
    }
}
