//! The plan of an experiment: the checkpoints of every arm, in a fixed order, and the shard of
//! them this process runs. One checkpoint is the unit of work (one model in memory at a time);
//! its layers × probe runs are the unit of output (one Parquet file each).

use std::path::PathBuf;

use super::config::{ExperimentFile, ExtraArm, SeedList, StepList, StepValue, Suite};
use crate::catalog::{self, Steps};
use mb_stats_bert::fetch::CheckpointSource;
use mb_stats_core::step::Step;
use mb_stats_files::error::{Result, input};

/// One checkpoint to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCheckpoint {
    /// The arm (`group` column).
    pub group: String,
    /// Pretraining seed.
    pub seed: u32,
    /// Pretraining step (None = final/unknown).
    pub step: Option<u64>,
    /// Where its files come from.
    pub source: CheckpointSource,
}

impl PlannedCheckpoint {
    /// How logs and metadata name it: the repo id (with revision) or the directory.
    pub fn name(&self) -> String {
        match &self.source {
            CheckpointSource::Hub {
                repo,
                revision: Some(rev),
            } => format!("{repo}@{rev}"),
            CheckpointSource::Hub { repo, revision: None } => repo.clone(),
            CheckpointSource::Local(dir) => dir.display().to_string(),
        }
    }

    /// Its folder under `OUT/runs/`: `group/seed_S[-step_K]`. A group name with characters
    /// other than letters, digits, `-`, `_` and `.` gets them replaced and a digest of the name
    /// appended, so two groups never share a folder.
    pub fn folder(&self) -> PathBuf {
        let mut safe: String = self
            .group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe != self.group || safe.starts_with('.') || safe.is_empty() {
            let digest = self.group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            safe = format!("{safe}-{:08x}", digest as u32);
        }
        let leaf = match self.step {
            Some(step) => format!("seed_{}-step_{step}", self.seed),
            None => format!("seed_{}", self.seed),
        };
        PathBuf::from(safe).join(leaf)
    }
}

/// Which part of the grid this process runs: checkpoints `k` with `k % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `I/N` with 0 ≤ I < N (Slurm: `--shard $SLURM_ARRAY_TASK_ID/N` with `--array=0-(N-1)`).
    fn from_str(spec: &str) -> std::result::Result<Self, String> {
        let parsed = spec
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Shard { index, count }),
            _ => Err("expected I/N with 0 <= I < N, e.g. 0/8".to_string()),
        }
    }
}

impl Shard {
    /// Whether checkpoint number `k` of the plan belongs to this shard.
    pub fn contains(&self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// The shard of a job-array task, read from the scheduler's environment (`var` looks a
    /// variable up): Slurm (`SLURM_ARRAY_TASK_ID` within `SLURM_ARRAY_TASK_MIN`..`_MAX`, or
    /// `SLURM_ARRAY_TASK_COUNT` for arrays from 0) or Grid Engine (`SGE_TASK_ID` within
    /// `SGE_TASK_FIRST`..`SGE_TASK_LAST`). The array must be contiguous (a step of 1), so that its
    /// tasks are exactly the shards.
    pub fn from_scheduler(var: impl Fn(&str) -> Option<String>) -> std::result::Result<Shard, String> {
        let number = |name: &str| -> std::result::Result<Option<usize>, String> {
            match var(name) {
                None => Ok(None),
                Some(text) => text
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name} is '{text}', expected a whole number")),
            }
        };
        let contiguous = |name: &str| match number(name)? {
            Some(step) if step != 1 => Err(format!("{name} is {step}: the array must have a step of 1")),
            _ => Ok(()),
        };
        let (id, first, last) = if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            contiguous("SLURM_ARRAY_TASK_STEP")?;
            match (number("SLURM_ARRAY_TASK_MIN")?, number("SLURM_ARRAY_TASK_MAX")?) {
                // An index list (`--array=0,1,5`) has fewer tasks than MIN..MAX: the missing
                // indices would leave their shards undone without a word.
                (Some(first), Some(last)) => match number("SLURM_ARRAY_TASK_COUNT")? {
                    Some(count) if last >= first && count != last - first + 1 => {
                        return Err(format!(
                            "SLURM_ARRAY_TASK_COUNT is {count} but SLURM_ARRAY_TASK_MIN..MAX is {first}..{last} \
                             ({} tasks): the array must be a contiguous range such as --array={first}-{last}",
                            last - first + 1
                        ));
                    }
                    _ => (id, first, last),
                },
                _ => match number("SLURM_ARRAY_TASK_COUNT")? {
                    Some(count) if count > 0 => (id, 0, count - 1),
                    _ => return Err("SLURM_ARRAY_TASK_ID is set without the array's bounds".into()),
                },
            }
        } else if let Some(id) = number("SGE_TASK_ID")? {
            contiguous("SGE_TASK_STEPSIZE")?;
            match (number("SGE_TASK_FIRST")?, number("SGE_TASK_LAST")?) {
                (Some(first), Some(last)) => (id, first, last),
                _ => return Err("SGE_TASK_ID is set without SGE_TASK_FIRST and SGE_TASK_LAST".into()),
            }
        } else {
            return Err("not in a job array (no SLURM_ARRAY_TASK_ID or SGE_TASK_ID); give the shard as I/N".into());
        };
        match (first..=last).contains(&id) {
            true => Ok(Shard {
                index: id - first,
                count: last - first + 1,
            }),
            false => Err(format!("task {id} is outside the array {first}-{last}")),
        }
    }
}

/// All checkpoints of the experiment: the suite, then the extra arms.
pub fn checkpoints(file: &ExperimentFile) -> Result<Vec<PlannedCheckpoint>> {
    let models = &file.experiment.models;
    let seeds = match &models.seeds {
        Some(SeedList::Text(spec)) => catalog::parse_seeds(spec).map_err(|e| models_error(file, "seeds", e))?,
        Some(SeedList::List(list)) => list.clone(),
        None => (0..catalog::N_SEEDS).collect(),
    };
    let steps = steps(file)?;
    let mut planned = match models.suite {
        Suite::Multiberts => multiberts(file, &seeds, &steps)?,
        Suite::Local => local_suite(file, &seeds, &steps)?,
    };
    for (i, arm) in models.extra.iter().enumerate() {
        planned.push(extra_arm(file, i, arm)?);
    }
    check_distinct(file, &planned)?;
    Ok(planned)
}

/// `models.KEY: error` of `file`.
fn models_error(file: &ExperimentFile, key: &str, e: mb_stats_files::error::Error) -> mb_stats_files::error::Error {
    input(format!("{}: models.{key}: {e}", file.path.display()))
}

/// `[models] steps`: absent (the final checkpoints), a keyword or list, or a TOML list.
fn steps(file: &ExperimentFile) -> Result<Steps> {
    let bad = |e| models_error(file, "steps", e);
    Ok(match &file.experiment.models.steps {
        None => Steps::Final,
        Some(StepList::Text(spec)) => Steps::parse(spec).map_err(bad)?,
        Some(StepList::List(values)) => Steps::List(
            values
                .iter()
                .map(|v| match v {
                    StepValue::Number(n) => Ok(*n),
                    StepValue::Text(t) => t
                        .parse::<Step>()
                        .map(|s| s.0)
                        .map_err(|_| input(format!("step {t:?}: expected a number like 20000 or 20k"))),
                })
                .collect::<Result<Vec<_>>>()
                .map_err(bad)?,
        ),
    })
}

/// The MultiBERTs checkpoints of `seeds` at `steps`, each step checked against the catalog.
fn multiberts(file: &ExperimentFile, seeds: &[u32], steps: &Steps) -> Result<Vec<PlannedCheckpoint>> {
    let models = &file.experiment.models;
    if let Steps::List(list) = steps {
        // Check every step against the catalog (the message names the bad one).
        for step in list {
            Steps::parse(&step.to_string()).map_err(|e| models_error(file, "steps", e))?;
        }
    }
    let entries = catalog::multiberts(seeds, steps).map_err(|e| models_error(file, "seeds", e))?;
    Ok(entries
        .into_iter()
        .map(|entry| PlannedCheckpoint {
            group: models.group.clone(),
            seed: entry.seed,
            step: Some(entry.step),
            source: CheckpointSource::Hub {
                repo: entry.repo,
                revision: models.revision.clone(),
            },
        })
        .collect())
}

/// The directories of a local suite: `models.path` with `{seed}` and `{step}` filled in, each
/// with a `config.json`.
fn local_suite(file: &ExperimentFile, seeds: &[u32], steps: &Steps) -> Result<Vec<PlannedCheckpoint>> {
    let models = &file.experiment.models;
    let bad = |key: &str, message: &str| models_error(file, key, input(message));
    let pattern = models.path.as_deref().expect("validated");
    let local_steps: Vec<Option<u64>> = match steps {
        Steps::Final => vec![None],
        Steps::List(list) => list.iter().copied().map(Some).collect(),
        Steps::All => {
            return Err(bad(
                "steps",
                "\"all\" is the MultiBERTs catalog; list the steps of a local suite",
            ));
        }
    };
    if seeds.len() > 1 && !pattern.contains("{seed}") {
        return Err(bad("path", "several seeds need {seed} in the pattern"));
    }
    if local_steps.len() > 1 && !pattern.contains("{step}") {
        return Err(bad("path", "several steps need {step} in the pattern"));
    }
    let mut planned = Vec::new();
    for &seed in seeds {
        for &step in &local_steps {
            let mut path = pattern.replace("{seed}", &seed.to_string());
            if let Some(step) = step {
                path = path.replace("{step}", &step.to_string());
            }
            let dir = file.resolve(&path);
            if !dir.join("config.json").is_file() {
                return Err(input(format!(
                    "{}: models.path: {} has no config.json (seed {seed})",
                    file.path.display(),
                    dir.display()
                )));
            }
            planned.push(PlannedCheckpoint {
                group: models.group.clone(),
                seed,
                step,
                source: CheckpointSource::Local(dir),
            });
        }
    }
    Ok(planned)
}

/// Extra arm number `i` of `[[models.extra]]`: a Hub repo or a local directory.
fn extra_arm(file: &ExperimentFile, i: usize, arm: &ExtraArm) -> Result<PlannedCheckpoint> {
    let source = match (&arm.repo, &arm.path) {
        (Some(repo), _) => CheckpointSource::Hub {
            repo: repo.clone(),
            revision: arm.revision.clone(),
        },
        (None, Some(path)) => {
            let dir = file.resolve(path);
            if !dir.join("config.json").is_file() {
                return Err(input(format!(
                    "{}: models.extra[{i}].path: {} has no config.json",
                    file.path.display(),
                    dir.display()
                )));
            }
            CheckpointSource::Local(dir)
        }
        (None, None) => unreachable!("validated"),
    };
    Ok(PlannedCheckpoint {
        group: arm.group.clone(),
        seed: arm.seed,
        step: arm.step,
        source,
    })
}

/// Refuses two checkpoints with one (group, seed, step): their rows no analysis could tell apart.
fn check_distinct(file: &ExperimentFile, planned: &[PlannedCheckpoint]) -> Result<()> {
    for (i, later) in planned.iter().enumerate() {
        if let Some(earlier) = planned[..i]
            .iter()
            .find(|c| (&c.group, c.seed, c.step) == (&later.group, later.seed, later.step))
        {
            return Err(input(format!(
                "{}: models: {} and {} are both group {:?}, seed {}{}; give one of them another group or seed",
                file.path.display(),
                earlier.name(),
                later.name(),
                later.group,
                later.seed,
                later.step.map(|s| format!(", step {s}")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(vars: &[(&str, &str)]) -> std::result::Result<Shard, String> {
        Shard::from_scheduler(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn a_job_array_task_knows_its_shard() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
        ];
        assert_eq!(shard(&slurm), Ok(Shard { index: 2, count: 8 }));
        let counted = [("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(shard(&counted), Ok(Shard { index: 0, count: 4 }));
        let sge = [
            ("SGE_TASK_ID", "5"),
            ("SGE_TASK_FIRST", "1"),
            ("SGE_TASK_LAST", "5"),
            ("SGE_TASK_STEPSIZE", "1"),
        ];
        assert_eq!(shard(&sge), Ok(Shard { index: 4, count: 5 }));
    }

    #[test]
    fn outside_an_array_or_with_gaps_there_is_no_shard() {
        assert!(shard(&[]).unwrap_err().contains("not in a job array"));
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert!(shard(&stepped).unwrap_err().contains("step of 1"));
        // `--array=0,1,5`: MIN 0, MAX 5, COUNT 3.
        let listed = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let refused = shard(&listed).unwrap_err();
        assert!(
            refused.contains("COUNT is 3") && refused.contains("contiguous"),
            "{refused}"
        );
        assert!(
            shard(&[("SLURM_ARRAY_TASK_ID", "x")])
                .unwrap_err()
                .contains("whole number")
        );
        assert!(shard(&[("SLURM_ARRAY_TASK_ID", "2")]).unwrap_err().contains("bounds"));
        let outside = [
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
        ];
        assert!(shard(&outside).unwrap_err().contains("outside"));
    }
}
