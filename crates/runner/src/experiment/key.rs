//! What determines a checkpoint's results, recorded beside them (in `done.json` and in every run
//! file's footer) so that a rerun into the same `--out` reuses only work that matches the
//! experiment as it is now, and refuses the rest instead of returning stale numbers.
//!
//! The key holds the checkpoint (name, group, seed, step and the identity of its files: size and
//! modification time of each file of a local directory, the configured revision of a Hub repo —
//! pin a commit in `revision` to key on exact weights), a digest of the task's data as loaded
//! (texts, labels, classes, pairs, targets and example ids after `eval_size`, so a changed file,
//! column or subset changes it), `task.kind`, `task.name`, `runtime.dtype`, `runtime.max_length`,
//! and the task's own settings that change a number ([`crate::task::Task::settings`]; the
//! probe's `task.pooling`, `task.l2`, `task.max_iter`, `data.train_size`, and for the checkpoint
//! as a whole `task.layers` and `task.runs`; the minimal pairs' `task.scoring`). The device,
//! `batch_tokens` and `[analysis]` are not part of it: they do not change a run file.

use serde_json::{Map, Value, json};

use super::config::ExperimentFile;
use super::plan::PlannedCheckpoint;
use crate::digest::Digest;
use crate::task::{self, Task, Unit};
use mb_stats_bert::fetch::CheckpointSource;

/// The key of one checkpoint's results under the experiment `file` and its `task`, with `data`
/// the digest of the task's data.
pub fn checkpoint_key(file: &ExperimentFile, task: &dyn Task, checkpoint: &PlannedCheckpoint, data: &str) -> Value {
    let e = &file.experiment;
    let mut key = json!({
        "checkpoint": checkpoint.name(),
        "group": checkpoint.group,
        "seed": checkpoint.seed,
        "step": checkpoint.step,
        "weights": weights_identity(&checkpoint.source),
        "data": data,
        "task.kind": task.kind(),
        "task.name": file.task_name(),
        "runtime.dtype": e.runtime.dtype.to_string(),
        "runtime.max_length": e.runtime.max_length.get(),
    });
    let fields = key.as_object_mut().expect("an object");
    for (name, value) in task.settings() {
        fields.insert(name.to_string(), value);
    }
    key
}

/// The key of one unit of a checkpoint: the checkpoint's key without the settings that list its
/// kind's units ([`crate::task::Kind::unit_lists`], found by the key's `task.kind`), plus the
/// unit's layer and run (a fine-tuning unit: its learning rate and run), as a digest.
pub fn unit_key(checkpoint_key: &Value, unit: Unit) -> String {
    let mut fields = checkpoint_key.as_object().cloned().unwrap_or_default();
    let kind = fields
        .get("task.kind")
        .and_then(Value::as_str)
        .and_then(|k| task::kind(k).ok());
    for list in kind.map_or(&[][..], |k| k.unit_lists) {
        fields.remove(*list);
    }
    match unit.lr {
        None => fields.insert("layer".into(), json!(unit.layer)),
        Some(lr) => fields.insert("lr".into(), json!(lr.value())),
    };
    fields.insert("run".into(), json!(unit.run));
    let mut h = Digest::default();
    h.field(&Value::Object(fields).to_string());
    h.finish()
}

/// The fields of `now` that differ from `before` (all of them when `before` is not a key).
pub fn differences(before: &Value, now: &Value) -> Vec<String> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    now.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// What identifies a checkpoint's files: for a local directory, each file's size and a digest of
/// its content — all of it up to [`WHOLE_FILE_BYTES`], else [`SAMPLED_BLOCKS`] blocks at fixed
/// offsets (another seed's weights differ everywhere, so a copy that keeps the modification
/// time is still told apart, at a few milliseconds per checkpoint instead of reading 440 MB);
/// for a Hub repo, the configured revision.
fn weights_identity(source: &CheckpointSource) -> Value {
    match source {
        CheckpointSource::Hub { revision, .. } => json!(revision.as_deref().unwrap_or("main")),
        CheckpointSource::Local(dir) => {
            let mut files = Map::new();
            for name in [
                "config.json",
                "vocab.txt",
                "tokenizer_config.json",
                "model.safetensors",
                "pytorch_model.bin",
            ] {
                let path = dir.join(name);
                if let Ok(meta) = std::fs::metadata(&path) {
                    files.insert(name.into(), json!([meta.len(), content_digest(&path, meta.len())]));
                }
            }
            Value::Object(files)
        }
    }
}

/// Files up to this size are digested whole.
const WHOLE_FILE_BYTES: u64 = 4 << 20;

/// Blocks of [`BLOCK_BYTES`] digested from a larger file, first and last included.
const SAMPLED_BLOCKS: u64 = 64;

/// The size of a sampled block.
const BLOCK_BYTES: u64 = 64 << 10;

/// The [`Digest`] of a file's content (whole, or sampled when larger than [`WHOLE_FILE_BYTES`]);
/// `None` when it cannot be read (the load says why).
fn content_digest(path: &std::path::Path, len: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let mut h = Digest::default();
    if len <= WHOLE_FILE_BYTES {
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes).ok()?;
        h.bytes(&bytes);
        return Some(h.finish());
    }
    let mut block = vec![0u8; BLOCK_BYTES as usize];
    for i in 0..SAMPLED_BLOCKS {
        file.seek(SeekFrom::Start(i * (len - BLOCK_BYTES) / (SAMPLED_BLOCKS - 1)))
            .ok()?;
        file.read_exact(&mut block).ok()?;
        h.bytes(&block);
    }
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::LearningRate;

    /// A large file's sampled digest: the same for the same content wherever it lies, changed
    /// by a change in a sampled block (the first byte of the file is in the first block).
    #[test]
    fn large_files_are_told_apart_by_sampled_content() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let bytes: Vec<u8> = (0..10u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        std::fs::write(&a, &bytes).unwrap();
        std::fs::write(&b, &bytes).unwrap();
        let len = bytes.len() as u64;
        assert!(len > WHOLE_FILE_BYTES);
        assert_eq!(content_digest(&a, len), content_digest(&b, len));
        let mut other = bytes.clone();
        other[0] ^= 1;
        std::fs::write(&b, &other).unwrap();
        assert_ne!(content_digest(&a, len), content_digest(&b, len));
    }

    #[test]
    fn unit_keys_ignore_the_layer_list_but_not_the_unit() {
        let a = json!({"task.kind": "linear-probe", "data": "x", "task.layers": [1, 2], "task.runs": 2});
        let b = json!({"task.kind": "linear-probe", "data": "x", "task.layers": [2], "task.runs": 3});
        let unit = |layer, run| Unit { layer, run, lr: None };
        assert_eq!(unit_key(&a, unit(2, 0)), unit_key(&b, unit(2, 0)));
        assert_ne!(unit_key(&a, unit(2, 0)), unit_key(&a, unit(2, 1)));
        let c = json!({"task.kind": "linear-probe", "data": "y", "task.layers": [2], "task.runs": 3});
        assert_ne!(unit_key(&a, unit(2, 0)), unit_key(&c, unit(2, 0)));
        assert_eq!(differences(&a, &c), vec!["data", "task.layers", "task.runs"]);
    }

    #[test]
    fn fine_tuning_unit_keys_ignore_the_rate_list_but_not_the_rate() {
        let a = json!({"task.kind": "fine-tune", "data": "x", "task.lrs": [2e-5, 3e-5], "task.runs": 2});
        let b = json!({"task.kind": "fine-tune", "data": "x", "task.lrs": [3e-5], "task.runs": 5});
        let unit = |lr: f64, run| Unit {
            layer: 6,
            run,
            lr: LearningRate::new(lr),
        };
        assert_eq!(unit_key(&a, unit(3e-5, 1)), unit_key(&b, unit(3e-5, 1)));
        assert_eq!(
            unit_key(&a, unit(3e-5, 1)),
            unit_key(
                &a,
                Unit {
                    layer: 0,
                    ..unit(3e-5, 1)
                }
            )
        );
        assert_ne!(unit_key(&a, unit(2e-5, 1)), unit_key(&a, unit(3e-5, 1)));
        assert_ne!(unit_key(&a, unit(3e-5, 0)), unit_key(&a, unit(3e-5, 1)));
    }
}
