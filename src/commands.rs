//! The work behind each subcommand: read inputs, call the analysis, write outputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cli::{
    BenchArgs, BootstrapArgs, CheckpointsArgs, Cli, Command, CurveArgs, EmbedArgs, ImportArgs, ImportFormat, MergeArgs,
    PowerArgs, ReportArgs, RunArgs, SeedsArgs, ShardArg, SquadScoreArg, TableFormatArg, VarianceArgs,
};
use mb_stats_analysis::analysis::{self, CurveOptions, Options, PowerOptions, SeedsOptions};
use mb_stats_analysis::export::{self, Format};
use mb_stats_analysis::import::{coref, glue, lm_eval, squad};
use mb_stats_analysis::report::{self, ReportOptions};
use mb_stats_analysis::results::filter::Filter;
use mb_stats_analysis::results::{ResultsTable, footer, parquet};
use mb_stats_analysis::synthetic::{self, Study};
use mb_stats_core::design::Pairing;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::Sampling;
use mb_stats_core::summary::Alternative;
use mb_stats_files::error::{Result, input};
use mb_stats_files::output::check_output;

/// Runs a parsed command line. Settings named in library errors are spelled as flags here.
pub fn run(cli: Cli) -> Result<()> {
    execute(cli).map_err(|e| e.spelled(flag))
}

/// The flag of a setting named in a library error (`threshold_abs` → `--threshold-abs`).
fn flag(setting: &str) -> String {
    format!("--{}", setting.replace('_', "-"))
}

fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bootstrap(args) => bootstrap(&args),
        Command::Bench(args) => bench(&args),
        Command::Import(args) => import(&args),
        Command::Report(args) => report(&args),
        Command::Seeds(args) => seeds(&args),
        Command::Curve(args) => curve(&args),
        Command::Variance(args) => variance(&args),
        Command::Power(args) => power(&args),
        Command::Run(args) => run_experiment(&args),
        Command::Merge(args) => merge(&args),
        Command::Embed(args) => embed(&args),
        Command::Checkpoints(args) => checkpoints(&args),
        Command::BenchBert(args) => mb_stats_runner::bench_bert::run(&mb_stats_runner::bench_bert::BenchBertOptions {
            sentences: args.sentences,
            tokenizer: args.tokenizer,
            n: args.n,
            runtime: (&args.runtime).into(),
            repeat: args.repeat,
            compare_torch: args.compare_torch,
        }),
        Command::BenchMlm(args) => mb_stats_runner::bench_mlm::run(&mb_stats_runner::bench_mlm::BenchMlmOptions {
            pairs: args.pairs,
            tokenizer: args.tokenizer,
            n: args.n,
            scoring: args.scoring,
            runtime: (&args.runtime).into(),
            repeat: args.repeat,
            compare_torch: args.compare_torch,
        }),
    }
}

/// `mb-stats power`: the table on stdout, `-o` by extension, `--plot` as SVG and PNG.
fn power(args: &PowerArgs) -> Result<()> {
    let metric = args.metric;
    let analysis = args.analysis.options(metric)?;
    if let Some(stem) = &args.plot {
        for extension in ["svg", "png"] {
            check_output("--plot", &stem.with_extension(extension), &[&args.results])?;
        }
    }
    let report = run_analysis(
        &args.results,
        args.output.as_ref(),
        |table| {
            let mut examples = args.examples.clone();
            if examples.is_empty() {
                examples.push(analysis::count_units(table, args.analysis.ignore_clusters)?);
            }
            let options = PowerOptions {
                analysis,
                effect: args.effect,
                alpha: args.alpha,
                seeds: args.seeds.clone(),
                examples,
                simulations: args.simulations,
            };
            analysis::power(table, &options)
        },
        export::terminal,
        export::serialize,
    )?;
    if let Some(stem) = &args.plot {
        let mut lines: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
        for r in report.rows.iter().filter(|r| r.cell == report.rows[0].cell) {
            match lines.iter_mut().find(|l| l.0 == r.examples) {
                Some(l) => l.1.push((r.seeds as f64, r.power)),
                None => lines.push((r.examples, vec![(r.seeds as f64, r.power)])),
            }
        }
        let title = format!("power to detect {} ({metric}, alpha {})", args.effect, args.alpha);
        report::figures::save(&report::figures::PowerPlot { title, lines }, stem)?;
    }
    Ok(())
}

/// `mb-stats variance`: the tables on stdout, `-o` by extension.
fn variance(args: &VarianceArgs) -> Result<()> {
    let options = args.analysis.options(args.metric)?;
    let analyse = |table: &ResultsTable| analysis::variance(table, &options);
    run_analysis(
        &args.results,
        args.output.as_ref(),
        analyse,
        export::terminal,
        export::serialize,
    )?;
    Ok(())
}

/// `mb-stats curve`: the tables on stdout, `-o` by extension.
fn curve(args: &CurveArgs) -> Result<()> {
    let analysis = args.analysis.options(args.metric)?;
    let options = CurveOptions {
        analysis,
        tolerance: args.tolerance,
    };
    let analyse = |table: &ResultsTable| analysis::curve(table, &options);
    run_analysis(
        &args.results,
        args.output.as_ref(),
        analyse,
        export::terminal,
        export::serialize,
    )?;
    Ok(())
}

/// `mb-stats seeds`: the table on stdout, `-o` by extension.
fn seeds(args: &SeedsArgs) -> Result<()> {
    let analysis = args.analysis.options(args.metric)?;
    let options = SeedsOptions {
        analysis,
        alpha: args.alpha,
        permutations: args.permutations,
    };
    let analyse = |table: &ResultsTable| analysis::seeds(table, &options);
    run_analysis(
        &args.results,
        args.output.as_ref(),
        analyse,
        export::terminal,
        export::serialize,
    )?;
    Ok(())
}

/// The shared course of the analysis commands: check `-o` before any work, read the table, run
/// the analysis, print its Markdown, write `-o` (by extension, atomically).
fn run_analysis<R>(
    results: &Path,
    output: Option<&PathBuf>,
    analyse: impl FnOnce(&ResultsTable) -> Result<R>,
    markdown: fn(&R) -> String,
    serialize: fn(&R, Format) -> Vec<u8>,
) -> Result<R> {
    let format = output.map(|p| Format::from_path("-o", p)).transpose()?;
    if let Some(path) = output {
        check_output("-o", path, &[results])?;
    }
    let table = parquet::read(results)?;
    let report = analyse(&table)?;
    let _ = std::io::stdout().lock().write_all(markdown(&report).as_bytes());
    if let (Some(path), Some(format)) = (output, format) {
        mb_stats_files::output::atomic_write(path, &serialize(&report, format))?;
    }
    Ok(report)
}

/// `mb-stats report`: all flags are checked before any work.
fn report(args: &ReportArgs) -> Result<()> {
    let metrics = args.metrics.clone();
    let analysis = args.analysis.options(metrics[0])?;
    mb_stats_files::output::check_output_dir("--out", &args.out, &[&args.results])?;
    let table = parquet::read(&args.results)?;
    let mut words = vec!["mb-stats".to_string()];
    words.extend(std::env::args().skip(1).map(|w| report::shell_quote(&w)));
    let options = ReportOptions {
        analysis,
        metrics,
        log_steps: args.log_steps,
        markdown: args.formats.contains(&TableFormatArg::Md),
        latex: args.formats.contains(&TableFormatArg::Tex),
        effect: args.effect,
        results: args.results.display().to_string(),
        command: words.join(" "),
        command_line: crate::cli::command_line,
    };
    let written = report::write(&table, &options, &args.out)?;
    eprintln!("wrote {} files to {}", written.len(), args.out.display());
    Ok(())
}

/// `mb-stats import`: reads a release format and writes the results table atomically.
fn import(args: &ImportArgs) -> Result<()> {
    let output = args
        .output
        .as_ref()
        .ok_or_else(|| input("-o OUT.parquet: import needs an output file"))?;
    if output.extension().and_then(|e| e.to_str()) != Some("parquet") {
        return Err(input(format!(
            "-o {}: expected a file ending in .parquet",
            output.display()
        )));
    }
    let inputs: Vec<&Path> = match &args.format {
        ImportFormat::Coref { dirs, bias } => dirs.iter().chain(bias).map(PathBuf::as_path).collect(),
        ImportFormat::Glue { index, labels, .. } => [Some(index), labels.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect(),
        ImportFormat::Squad { index, dev, .. } => vec![index.as_path(), dev.as_path()],
        ImportFormat::LmEval { paths, .. } => paths.iter().map(PathBuf::as_path).collect(),
    };
    check_output("-o", output, &inputs)?;
    if let ImportFormat::LmEval {
        paths,
        metric,
        group,
        seed_pattern,
        seeds,
        force,
    } = &args.format
    {
        let options = lm_eval::Options {
            metric: metric.clone(),
            group: group.clone(),
            seed_pattern: seed_pattern.clone(),
            seeds: seeds.clone(),
            force: *force,
        };
        let summary = lm_eval::import(paths, &options, output)?;
        eprintln!("{}", summary.describe(&output.display().to_string(), flag));
        return Ok(());
    }
    let table = match &args.format {
        ImportFormat::Coref { dirs, bias: None } => coref::import(dirs)?,
        ImportFormat::Coref {
            dirs,
            bias: Some(occupations),
        } => coref::import_bias(dirs, occupations)?,
        ImportFormat::Glue {
            index,
            task,
            labels,
            best_lr,
        } => glue::import(index, task, labels.as_deref(), *best_lr)?,
        ImportFormat::Squad {
            index,
            dev,
            task,
            score,
        } => {
            let which = match score {
                SquadScoreArg::Em => squad::Score::ExactMatch,
                SquadScoreArg::F1 => squad::Score::F1,
            };
            squad::import(index, dev, task.as_deref(), which)?
        }
        ImportFormat::LmEval { .. } => unreachable!("imported above"),
    };
    parquet::write(&table, output)?;
    eprintln!("wrote {} rows to {}", table.len(), output.display());
    Ok(())
}

/// `mb-stats bootstrap`: every flag is checked before any work, and outputs are written only
/// when everything succeeded.
fn bootstrap(args: &BootstrapArgs) -> Result<()> {
    let options = args.options()?;
    if let Some(path) = &args.output {
        Format::from_path("-o", path)?;
        check_output("-o", path, &[&args.results])?;
    }
    if let Some(path) = &args.samples {
        export::samples::check_path(path)?;
        check_output("--samples", path, &[&args.results])?;
    }
    let table = parquet::read(&args.results)?;
    let report = analysis::bootstrap(&table, &options)?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(export::terminal(&report).as_bytes());
    if let Some(path) = &args.output {
        export::write(&report, path)?;
    }
    if let Some(path) = &args.samples {
        export::samples::write(&report, path)?;
    }
    Ok(())
}

/// `mb-stats bench`: times the whole analysis (design building and engine) on the coreference-
/// like synthetic design, paired, for each metric; prints the median after one warm-up run and
/// the ratio to accuracy.
fn bench(args: &BenchArgs) -> Result<()> {
    let study = Study::coref_like();
    let classification = synthetic::classification(&study, 1);
    let regression = synthetic::regression(&study, 1);
    if let Some(path) = &args.write_design {
        check_output("--write-design", path, &[])?;
        parquet::write(&classification, path)?;
    }
    let threads = rayon::current_num_threads();
    // Write errors (a closed pipe) are ignored: the timings are only printed.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "design: {} arms x {} seeds x {} runs x {} examples, paired, sampling both, nboot {}, {threads} threads",
        study.arms.len(),
        study.seeds,
        study.runs,
        study.examples,
        args.nboot
    );
    let _ = writeln!(
        out,
        "{:<10} {:>12} {:>12} {:>14}",
        "metric", "median ms", "x accuracy", "replicates/s"
    );
    let mut accuracy_ms = None;
    let metrics: Vec<Metric> = match args.metrics.is_empty() {
        true => Metric::ALL.to_vec(),
        false => args.metrics.clone(),
    };
    for metric in metrics {
        let table = if matches!(metric, Metric::Pearson | Metric::Spearman) {
            &regression
        } else {
            &classification
        };
        let options = Options {
            metric,
            comparison: Some((
                Filter::parse("group=base").expect("filter"),
                Filter::parse("group=cda").expect("filter"),
            )),
            pairing: Pairing::Paired,
            sampling: Sampling::Both,
            nboot: args.nboot,
            confidence: 0.95,
            interval: args.interval,
            alternative: Alternative::Greater,
            by: Vec::new(),
            ignore_clusters: false,
            rng_seed: 0,
            threshold_abs: None,
            threshold_rel: None,
        };
        analysis::bootstrap(table, &options)?; // warm-up: page faults, thread pool start
        let mut times: Vec<f64> = (0..args.repeats.max(1))
            .map(|_| {
                let start = Instant::now();
                let report = analysis::bootstrap(table, &options);
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                report.map(|_| elapsed)
            })
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let base = *accuracy_ms.get_or_insert(median);
        let _ = writeln!(
            out,
            "{:<10} {:>12.1} {:>12.2} {:>14.0}",
            metric.name(),
            median,
            median / base,
            args.nboot.get() as f64 / median * 1e3
        );
    }
    Ok(())
}

/// `mb-stats embed`.
fn embed(args: &EmbedArgs) -> Result<()> {
    let request = mb_stats_runner::embed::EmbedRequest {
        model: &args.model,
        input: &args.input,
        text_column: args.text_column.as_deref(),
        pair_column: args.pair_column.as_deref(),
        layers: args.layers.clone(),
        pooling: args.pooling,
        runtime: (&args.runtime).into(),
        offline: args.offline,
        progress: args.progress.style(),
    };
    check_output("-o", &args.output, &[&args.input])?;
    mb_stats_runner::embed::embed(&request, &args.output)
}

/// `mb-stats checkpoints`: one line per catalog entry, with whether it is cached.
fn checkpoints(args: &CheckpointsArgs) -> Result<()> {
    let entries = mb_stats_runner::catalog::multiberts(&args.seeds.0, &args.steps)?;
    let cache = mb_stats_bert::hub::HubCache::from_env();
    if args.download && mb_stats_bert::hub::offline_from_env() {
        return Err(input(
            "--download: HF_HUB_OFFLINE is set, so nothing may be downloaded; unset it (on a node with network) or drop --download",
        ));
    }
    if args.download {
        let n = mb_stats_runner::catalog::download_missing(&cache, &entries, &|line| eprintln!("{line}"))?;
        eprintln!("{n} checkpoints downloaded into {}", cache.root().display());
    }
    println!("{:<40} {:>4} {:>8}  cached", "repo", "seed", "step");
    for entry in entries {
        let cached = cache.is_cached(&entry.repo, None);
        if args.cached && !cached {
            continue;
        }
        println!(
            "{:<40} {:>4} {:>8}  {}",
            entry.repo,
            entry.seed,
            entry.step,
            if cached { "yes" } else { "no" }
        );
    }
    println!("# Hugging Face cache: {}", cache.root().display());
    Ok(())
}

/// `mb-stats run`: for each experiment file in turn, evaluate the plan (or one shard of it);
/// without a shard, merge everything into `OUT/results.parquet` and print the Multi-Bootstrap
/// summary of `[analysis]`.
fn run_experiment(args: &RunArgs) -> Result<()> {
    use mb_stats_runner::experiment::{config::ExperimentFile, plan};
    let shard = match args.shard {
        Some(ShardArg::Auto) => Some(
            plan::Shard::from_scheduler(|name| std::env::var(name).ok())
                .map_err(|e| input(format!("--shard auto: {e}")))?,
        ),
        Some(ShardArg::Part(part)) => Some(part),
        None => None,
    };
    if args.experiments.len() > 1 {
        for (flag, given) in [("--out", args.out.is_some()), ("--shard", shard.is_some())] {
            if given {
                return Err(input(format!(
                    "{flag}: only with one experiment file (several run one after the other, each into out/<its stem>)"
                )));
            }
        }
    }
    // Every file and output folder is checked before the first starts (the checkpoints an
    // experiment reads may be made by the one before it).
    let mut runs = Vec::with_capacity(args.experiments.len());
    for path in &args.experiments {
        let file = ExperimentFile::read(path)?;
        let out = args.out.clone().unwrap_or_else(|| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            PathBuf::from("out").join(stem)
        });
        mb_stats_files::output::check_output_dir("--out", &out, &[path])?;
        runs.push((file, out));
    }
    runs.iter().try_for_each(|(file, out)| run_one(file, out, shard, args))
}

/// One experiment file of `mb-stats run`, into `out`.
fn run_one(
    file: &mb_stats_runner::experiment::config::ExperimentFile,
    out: &Path,
    shard: Option<mb_stats_runner::experiment::plan::Shard>,
    args: &RunArgs,
) -> Result<()> {
    use mb_stats_runner::experiment::{driver, merge, plan, summary};
    let checkpoints = plan::checkpoints(file)?;
    let options = driver::RunOptions {
        out: out.to_path_buf(),
        device: args.device,
        shard,
        offline: args.offline,
        force: args.force,
        evict: args.evict,
        progress: args.progress.style(),
    };
    let mut analysis_options = summary::options(file, &checkpoints)?;
    let files = driver::run(file, &checkpoints, &options)?;
    if shard.is_some() {
        eprintln!(
            "shard done; when every shard has finished: mb-stats merge {} -o results.parquet",
            out.display()
        );
        return Ok(());
    }
    // Only this experiment's run files: never other work left in OUT/runs.
    let table = merge::merge_files(&files, Some(&file.text))?;
    let results = out.join("results.parquet");
    parquet::write(&table, &results)?;
    eprintln!("wrote {} ({} rows)", results.display(), table.len());
    summary::split_by_layer(&mut analysis_options, &table);
    report_lr_selection(&table);
    // Settings of the closing summary come from the experiment file's [analysis]; with every
    // fine-tuning rate kept, one summary per rate.
    for (heading, part) in by_learning_rate(&table) {
        let report = analysis::bootstrap(&part, &analysis_options)
            .map_err(|e| e.spelled(|key| format!("{}: analysis.{key}", file.path.display())))?;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(heading.as_bytes());
        let _ = out.write_all(export::terminal(&report).as_bytes());
    }
    Ok(())
}

/// The table split by its `lr` column when it holds several fine-tuning rates because every rate
/// was kept (each part with a heading line), else the whole table under no heading: after a
/// selection each group keeps its own rate, and splitting by rate would part the arms of a
/// comparison (`analysis.base … selects no rows` after results.parquet was written).
fn by_learning_rate(table: &ResultsTable) -> Vec<(String, ResultsTable)> {
    let selected = table.metadata.iter().any(|(k, _)| k == footer::LR_SELECTION);
    let Some((_, rates)) = table.extra.iter().find(|(name, _)| name == "lr").filter(|_| !selected) else {
        return vec![(String::new(), table.clone())];
    };
    let mut distinct: Vec<f64> = rates.iter().flatten().copied().collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 {
        return vec![(String::new(), table.clone())];
    }
    distinct
        .into_iter()
        .map(|lr| {
            let rows: Vec<usize> = (0..table.len()).filter(|&i| rates[i] == Some(lr)).collect();
            (format!("\nlearning rate {lr:e}:\n"), table.select(&rows))
        })
        .collect()
}

/// `mb-stats merge`: `-o` is checked before anything is read.
fn merge(args: &MergeArgs) -> Result<()> {
    if args.output.extension().and_then(|e| e.to_str()) != Some("parquet") {
        return Err(input(format!(
            "-o {}: expected a file ending in .parquet (merge writes a Parquet results table)",
            args.output.display()
        )));
    }
    use mb_stats_runner::experiment::merge;
    // A table written among the run folders would be read back as one of them by the next merge.
    let parent = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(parent) = parent.canonicalize() {
        for dir in &args.dirs {
            if let Ok(runs) = dir.join("runs").canonicalize()
                && parent.starts_with(&runs)
            {
                return Err(input(format!(
                    "-o {}: inside the run folders of {}; write the merged table elsewhere (e.g. {})",
                    args.output.display(),
                    dir.display(),
                    dir.join("results.parquet").display()
                )));
            }
        }
    }
    let (files, missing) = match merge::planned_files(&args.dirs)? {
        Some(planned) => {
            if !planned.missing.is_empty() && !args.allow_partial {
                let shown: Vec<&str> = planned.missing.iter().take(5).map(String::as_str).collect();
                return Err(input(format!(
                    "{}: {} of {} planned checkpoints have no finished work (runs/{}{}); run the missing shards, or merge what is there with --allow-partial",
                    args.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    planned.missing.len(),
                    planned.planned,
                    shown.join(", runs/"),
                    if planned.missing.len() > 5 { ", …" } else { "" }
                )));
            }
            if planned.files.is_empty() {
                return Err(input(format!(
                    "{}: no finished run files",
                    args.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            (planned.files, planned.missing)
        }
        None => (merge::dir_files(&args.dirs)?, Vec::new()),
    };
    let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    check_output("-o", &args.output, &inputs)?;
    let mut table = merge::merge_files(&files, None)?;
    if !missing.is_empty() {
        eprintln!(
            "partial: {} planned checkpoints missing (named in the footer, {})",
            missing.len(),
            footer::PARTIAL
        );
        table.metadata.push((footer::PARTIAL.into(), missing.join(", ")));
    }
    parquet::write(&table, &args.output)?;
    eprintln!("wrote {} ({} rows)", args.output.display(), table.len());
    report_lr_selection(&table);
    Ok(())
}

/// Says which fine-tuning learning rates a merged table kept, and that the evaluation set chose them.
fn report_lr_selection(table: &ResultsTable) {
    if let Some((_, selection)) = table.metadata.iter().find(|(k, _)| k == footer::LR_SELECTION) {
        eprintln!("learning rates kept: {selection}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mb_stats_analysis::results::{ExampleIds, Numbers};

    /// Two arms whose learning rates differ: one part after a selection, one per rate otherwise.
    #[test]
    fn learning_rates_split_the_summary_only_when_every_rate_was_kept() {
        let mut table = ResultsTable {
            group: vec!["a", "b"].into(),
            seed: vec![0, 0],
            step: None,
            run: None,
            task: None,
            layer: None,
            example: ExampleIds::Int(vec![0, 0]),
            label: Some(Numbers::Int(vec![Some(1), Some(1)])),
            prediction: Some(Numbers::Int(vec![Some(1), Some(0)])),
            score: None,
            cluster: None,
            extra: vec![("lr".into(), vec![Some(2e-5), Some(3e-5)])],
            metadata: Vec::new(),
        };
        assert_eq!(by_learning_rate(&table).len(), 2);
        table.metadata.push((footer::LR_SELECTION.into(), "best-mean".into()));
        let parts = by_learning_rate(&table);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].1.len(), 2, "both arms in one summary");
    }
}
