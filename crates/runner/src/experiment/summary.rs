//! The closing summary of `mb-stats run`: the `[analysis]` section as the options of the
//! Multi-Bootstrap, checked against the plan before any model loads.

use super::config::ExperimentFile;
use super::plan::PlannedCheckpoint;
use mb_stats_analysis::analysis::Options;
use mb_stats_analysis::results::filter::{Filter, Key};
use mb_stats_analysis::results::{ExampleIds, ResultsTable, Texts};
use mb_stats_core::design::Pairing;
use mb_stats_files::error::{Result, input};

/// The closing summary's options from `[analysis]`: split by step when the plan has several (and
/// by layer once the results show several: [`split_by_layer`]).
pub fn options(file: &ExperimentFile, checkpoints: &[PlannedCheckpoint]) -> Result<Options> {
    let a = &file.experiment.analysis;
    let comparison = match (&a.base, &a.treatment) {
        (Some(b), Some(t)) => Some((b.clone(), t.clone())),
        _ => None,
    };
    if let Some((base, treatment)) = &comparison {
        check_plan_filters(file, checkpoints, base, treatment, a.paired)?;
    }
    // Checkpoints without a step (final or unknown) join every step's cell of the summary.
    let mut steps: Vec<u64> = checkpoints.iter().filter_map(|c| c.step).collect();
    steps.sort_unstable();
    steps.dedup();
    let mut by = Vec::new();
    if steps.len() > 1 {
        by.push(Key::Step);
    }
    Ok(Options {
        metric: file.metric(),
        comparison,
        pairing: if a.paired { Pairing::Paired } else { Pairing::Unpaired },
        nboot: a.nboot,
        interval: a.interval,
        by,
        rng_seed: a.rng_seed,
        ..Options::default()
    })
}

/// Splits the summary by layer (first) when `table` holds several layers.
pub fn split_by_layer(options: &mut Options, table: &ResultsTable) {
    let mut layers: Vec<i64> = table.layer.iter().flatten().flatten().copied().collect();
    layers.sort_unstable();
    layers.dedup();
    if layers.len() > 1 && !options.by.contains(&Key::Layer) {
        options.by.insert(0, Key::Layer);
    }
}

/// Checks `[analysis] base`/`treatment` against the plan before any model is loaded: each must
/// select a checkpoint, and paired sides must share a seed. Filters that name `layer` or `run`
/// (known only once the models are loaded) are left to the summary's own checks.
fn check_plan_filters(
    file: &ExperimentFile,
    checkpoints: &[PlannedCheckpoint],
    base: &Filter,
    treatment: &Filter,
    paired: bool,
) -> Result<()> {
    let n = checkpoints.len();
    let plan = ResultsTable {
        group: checkpoints.iter().map(|c| Some(&c.group)).collect(),
        seed: checkpoints.iter().map(|c| i64::from(c.seed)).collect(),
        step: Some(checkpoints.iter().map(|c| c.step.map(|s| s as i64)).collect()),
        run: None,
        task: Some(Texts::repeat(Some(&file.task_name()), n)),
        layer: None,
        example: ExampleIds::Int((0..n as i64).collect()),
        label: None,
        prediction: None,
        score: None,
        cluster: None,
        extra: Vec::new(),
        metadata: Vec::new(),
    };
    let planned = |f: &Filter| f.keys().iter().all(|k| !matches!(k, Key::Layer | Key::Run));
    if !planned(base) || !planned(treatment) {
        return Ok(());
    }
    let mut seeds = Vec::new();
    for (key, filter) in [("base", base), ("treatment", treatment)] {
        let selected: Vec<i64> = (0..n)
            .zip(filter.mask(&plan))
            .filter(|&(_, selected)| selected)
            .map(|(i, _)| plan.seed[i])
            .collect();
        if selected.is_empty() {
            let mut groups: Vec<&str> = plan.group.iter().flatten().collect();
            groups.dedup();
            return Err(input(format!(
                "{}: analysis.{key} = {:?}: selects none of the experiment's checkpoints (groups: {})",
                file.path.display(),
                filter.to_string(),
                groups.join(", ")
            )));
        }
        seeds.push(selected);
    }
    if paired && !seeds[0].iter().any(|s| seeds[1].contains(s)) {
        return Err(input(format!(
            "{}: analysis.paired: the base and treatment checkpoints share no seed; set paired = false",
            file.path.display()
        )));
    }
    Ok(())
}
