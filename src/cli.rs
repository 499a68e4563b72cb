//! The command line (clap), kept apart from the work: parsing here, work in the library.

use std::path::PathBuf;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use mb_stats_bert::mlm::PllScoring;
use mb_stats_bert::{BatchTokens, DeviceSpec, Layers, MaxLength, Pooling, Precision, Runtime};
use mb_stats_runner::catalog::{Seeds, Steps};
use mb_stats_runner::experiment::plan::Shard;
use mb_stats_runner::progress::Style;

use mb_stats_analysis::analysis::values::{finite, non_negative, positive, probability, rng_seed};
use mb_stats_analysis::analysis::{Options, ReplicateCount};
use mb_stats_analysis::report;
use mb_stats_analysis::results::filter::{Filter, Key};
use mb_stats_core::design::Pairing;
use mb_stats_core::interval::IntervalMethod;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::Sampling;
use mb_stats_core::summary::Alternative;
use mb_stats_files::error::{Result, input};

/// mb-stats: does a finding hold for the training procedure, or only for one checkpoint?
#[derive(Parser, Debug)]
#[command(name = "mb-stats", version, about, arg_required_else_help = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Multi-Bootstrap confidence intervals and tests on a results table (schema v1).
    Bootstrap(BootstrapArgs),
    /// Time the engine on a synthetic design like the MultiBERTs coreference study.
    Bench(BenchArgs),
    /// Turn the published MultiBERTs prediction releases into a results table.
    Import(ImportArgs),
    /// Tables, figures and a notebook for a paper, written into one folder.
    Report(ReportArgs),
    /// Artifact or procedure: each seed's own conclusion beside the procedure's, agreement, and a
    /// test of "no seed effect".
    Seeds(SeedsArgs),
    /// Learning dynamics over intermediate checkpoints: paired deltas, simultaneous bands,
    /// convergence step.
    Curve(CurveArgs),
    /// Variance components (seed, run, example, seed × example) and the standard errors they imply.
    Variance(VarianceArgs),
    /// How many seeds (and examples) a study needs to detect an effect of a given size.
    Power(PowerArgs),
    /// Run an experiment file: every checkpoint evaluated, per-example results stored, and the
    /// Multi-Bootstrap summary printed.
    Run(RunArgs),
    /// Join the run files of several outputs (e.g. the shards of a cluster job) into one table.
    Merge(MergeArgs),
    /// Hidden states of a BERT checkpoint for every text of a file, as Parquet.
    Embed(EmbedArgs),
    /// The MultiBERTs checkpoint catalog, and which checkpoints are in the Hugging Face cache.
    Checkpoints(CheckpointsArgs),
    /// Time the BERT runtime (BERT-base sizes, random weights) on SST-2-like sentences, beside PyTorch.
    BenchBert(BenchBertArgs),
    /// Minimal pairs per second scored by pseudo-log-likelihood at BERT-base sizes on BLiMP pairs,
    /// beside transformers on the same pairs (--compare-torch).
    BenchMlm(BenchMlmArgs),
}

/// `mb-stats run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The experiment file (TOML); several run one after the other (each into out/<its stem>),
    /// every file checked before the first starts.
    #[arg(required = true, num_args = 1..)]
    pub experiments: Vec<PathBuf>,
    /// Output folder (default: out/<experiment file stem>; one experiment file only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// auto, cpu or cuda:N (overrides [runtime] device).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Run part I of N of the checkpoints (0-based), or `auto`: this job-array task's part (Slurm
    /// or Grid Engine); merge afterwards.
    #[arg(long, allow_hyphen_values = true, value_parser = shard)]
    pub shard: Option<ShardArg>,
    /// Use only the Hugging Face cache (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Redo finished checkpoints and runs.
    #[arg(long)]
    pub force: bool,
    /// Remove a checkpoint's downloaded files from the Hugging Face cache once its work is
    /// finished (only files this run downloaded), for grids larger than the disk.
    #[arg(long)]
    pub evict: bool,
    /// Progress on stderr.
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// How long commands report progress: bars on a terminal, plain lines in a log file.
#[derive(clap::Args, Debug)]
pub struct ProgressArgs {
    /// No progress lines or bars (errors and results still print).
    #[arg(long)]
    pub quiet: bool,
    /// Without a terminal (a job's log file), print each counter's progress at most this often.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = positive_seconds)]
    pub log_interval: f64,
}

impl ProgressArgs {
    /// The progress style for stderr.
    pub fn style(&self) -> Style {
        Style::for_stderr(self.quiet, Duration::from_secs_f64(self.log_interval))
    }
}

/// `mb-stats merge`.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Output folders of `mb-stats run` (or folders of run files).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged results table (Parquet).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Merge what is finished when planned checkpoints are missing (the footer names them).
    #[arg(long)]
    pub allow_partial: bool,
}

/// `mb-stats embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Local checkpoint directory or Hub repo id (`owner/name` or `owner/name@revision`).
    #[arg(long)]
    pub model: String,
    /// Texts: one per line (.txt) or a table (.tsv, .csv, .jsonl, .parquet).
    #[arg(long)]
    pub input: PathBuf,
    /// Output Parquet file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Column with the texts (tables; default: text or sentence).
    #[arg(long)]
    pub text_column: Option<String>,
    /// Column with the second text of sentence pairs.
    #[arg(long)]
    pub pair_column: Option<String>,
    /// Layers to keep: all, last, or a list like 0,6,12 (0 = embeddings output).
    #[arg(long, default_value = "all")]
    pub layers: Layers,
    /// cls, mean, or none (one row per token).
    #[arg(long, default_value = "cls")]
    pub pooling: Pooling,
    /// Device, dtype, lengths and batching.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Use only the Hugging Face cache (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Progress on stderr.
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// The runtime's flags: the fields of [`Runtime`], with its defaults.
#[derive(clap::Args, Debug)]
pub struct RuntimeArgs {
    /// auto, cpu or cuda:N.
    #[arg(long, default_value_t = Runtime::DEFAULT.device)]
    pub device: DeviceSpec,
    /// f32, f16 or bf16.
    #[arg(long, default_value_t = Runtime::DEFAULT.dtype)]
    pub dtype: Precision,
    /// Truncate inputs to this many tokens (capped by the model's position limit).
    #[arg(long, default_value_t = Runtime::DEFAULT.max_length, allow_negative_numbers = true)]
    pub max_length: MaxLength,
    /// Padded tokens per batch (memory is bounded by this).
    #[arg(long, default_value_t = Runtime::DEFAULT.batch_tokens, allow_negative_numbers = true)]
    pub batch_tokens: BatchTokens,
}

impl From<&RuntimeArgs> for Runtime {
    fn from(args: &RuntimeArgs) -> Runtime {
        Runtime {
            device: args.device,
            dtype: args.dtype,
            max_length: args.max_length,
            batch_tokens: args.batch_tokens,
        }
    }
}

/// `mb-stats checkpoints`.
#[derive(clap::Args, Debug)]
pub struct CheckpointsArgs {
    /// Seeds, like 0-24 or 0,3,7.
    #[arg(long, default_value = "0-24")]
    pub seeds: Seeds,
    /// final, all (the 29 checkpoints of seeds 0-4), or a list of steps like 20k,200k.
    #[arg(long, default_value = "final")]
    pub steps: Steps,
    /// List only the checkpoints already in the Hugging Face cache.
    #[arg(long)]
    pub cached: bool,
    /// Download the listed checkpoints that are not in the cache (after checking the space), so
    /// that later runs can be --offline.
    #[arg(long, conflicts_with = "cached")]
    pub download: bool,
}

/// `mb-stats bench-bert`.
#[derive(clap::Args, Debug)]
pub struct BenchBertArgs {
    /// Sentences to time (a table with a text or sentence column, e.g. GLUE SST-2 dev.tsv),
    /// tokenized with --tokenizer; default: a fixed synthetic SST-2-like length mix.
    #[arg(long, requires = "tokenizer")]
    pub sentences: Option<PathBuf>,
    /// Checkpoint directory whose tokenizer (BERT uncased vocabulary) tokenizes --sentences.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// How many sentences to time.
    #[arg(long, default_value_t = 256, allow_negative_numbers = true, value_parser = positive)]
    pub n: usize,
    /// Device, dtype, lengths and batching.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Timed passes over all sentences per tool (after one warm-up batch); the median pass is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Also time PyTorch + transformers on the same batches with this Python (runs bench/bert_torch.py).
    #[arg(long)]
    pub compare_torch: Option<PathBuf>,
}

/// `mb-stats bench-mlm`.
#[derive(clap::Args, Debug)]
pub struct BenchMlmArgs {
    /// BLiMP pairs: a folder of paradigm JSONL files or one file (sentence_good, sentence_bad).
    #[arg(long)]
    pub pairs: PathBuf,
    /// Checkpoint directory whose vocab.txt (BERT uncased) tokenizes the pairs.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// How many pairs, taken from the paradigms in turn.
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = positive)]
    pub n: usize,
    /// pll or pll-word-l2r.
    #[arg(long, default_value = "pll")]
    pub scoring: PllScoring,
    /// Device, dtype, lengths and batching.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Timed passes per tool (after a warm-up pass); the median pass is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Also time transformers on the same pairs with this Python (runs bench/mlm_torch.py).
    #[arg(long)]
    pub compare_torch: Option<PathBuf>,
}

/// `mb-stats import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The release format.
    #[command(subcommand)]
    pub format: ImportFormat,
    /// The results table to write (Parquet).
    #[arg(short, long, global = true)]
    pub output: Option<PathBuf>,
}

/// The formats of `mb-stats import`.
#[derive(Subcommand, Debug)]
pub enum ImportFormat {
    /// Winogender coreference: one folder per group with run_info.tsv, preds.tsv, label_info.tsv.
    Coref {
        /// Group folders (the folder name becomes the group).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Write the bias table instead (per run and occupation), with this occupations-stats.tsv.
        #[arg(long, value_name = "OCCUPATIONS_TSV")]
        bias: Option<PathBuf>,
    },
    /// GLUE: index.tsv, one class-score file per run and TASK_dev_labels.
    Glue {
        /// The release's index.tsv.
        index: PathBuf,
        /// Task to import (e.g. MNLI, STS-B).
        #[arg(long)]
        task: String,
        /// Dev labels (default: TASK_dev_labels beside the index).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Keep the best learning rate per (release, n_steps) by mean run score.
        #[arg(long)]
        best_lr: bool,
    },
    /// SQuAD 2.0: index.tsv, one prediction JSON per run and dev-v2.0.json.
    Squad {
        /// The release's index.tsv.
        index: PathBuf,
        /// The official dev-v2.0.json.
        #[arg(long)]
        dev: PathBuf,
        /// Task of the index to import (needed when it lists several).
        #[arg(long)]
        task: Option<String>,
        /// Per-question score written to `score`.
        #[arg(long, value_enum, default_value = "f1")]
        score: SquadScoreArg,
    },
    /// lm-evaluation-harness per-sample output (--log_samples) of a seed suite: every layout
    /// from v0.4.0 on, and lm-checkpoints'.
    LmEval {
        /// Samples files, folders searched recursively, or globs.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Per-sample metric written to `score` (default: each task's first, e.g. acc).
        #[arg(long)]
        metric: Option<String>,
        /// Group of every row (default: the model's name without its seed).
        #[arg(long)]
        group: Option<String>,
        /// Regular expression whose first group is the seed in a model's name.
        #[arg(long, value_name = "REGEX", default_value = mb_stats_analysis::import::lm_eval::SEED_PATTERN, value_parser = seed_pattern)]
        seed_pattern: regex::Regex,
        /// The seed of a model whose name has none (repeatable): --seed EleutherAI/pythia-160m=0.
        #[arg(long = "seed", value_name = "MODEL=SEED", value_parser = model_seed)]
        seeds: Vec<(String, i64)>,
        /// Write the table even when a check against the harness's aggregates or across seeds
        /// fails (each failure is printed as a warning).
        #[arg(long)]
        force: bool,
    },
}

/// A seed pattern: a regular expression.
fn seed_pattern(text: &str) -> std::result::Result<regex::Regex, String> {
    regex::Regex::new(text).map_err(|e| {
        format!(
            "not a regular expression: {}",
            e.to_string().lines().last().unwrap_or_default()
        )
    })
}

/// `MODEL=SEED`.
fn model_seed(text: &str) -> std::result::Result<(String, i64), String> {
    let (model, seed) = text
        .rsplit_once('=')
        .ok_or("expected MODEL=SEED, e.g. EleutherAI/pythia-160m=0")?;
    let seed = seed
        .trim()
        .parse()
        .map_err(|_| format!("seed '{seed}' is not an integer"))?;
    Ok((model.trim().to_string(), seed))
}

/// Human-readable table formats of `report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormatArg {
    /// Markdown.
    Md,
    /// LaTeX (booktabs).
    Tex,
}

/// Per-question SQuAD scores on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SquadScoreArg {
    /// Exact match.
    Em,
    /// Token F1.
    F1,
}

/// The analysis flags shared by `bootstrap` and `report`.
#[derive(clap::Args, Debug)]
pub struct AnalysisArgs {
    /// Baseline rows: column=value[,column=value].
    #[arg(long, requires = "treatment")]
    pub base: Option<String>,
    /// Treatment rows: column=value[,column=value].
    #[arg(long, requires = "base")]
    pub treatment: Option<String>,
    /// Pair the two sides on seed values (seeds on one side only are dropped and reported).
    #[arg(long, requires = "base")]
    pub paired: bool,
    /// What each replicate resamples: both (seeds and examples jointly), seeds, or examples (or
    /// clusters).
    #[arg(long, default_value = "both")]
    pub sample: Sampling,
    /// Number of bootstrap replicates.
    #[arg(long, default_value_t = ReplicateCount::DEFAULT, allow_negative_numbers = true)]
    pub nboot: ReplicateCount,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true, value_parser = probability)]
    pub confidence: f64,
    /// Interval method: calibrated (percentile calibrated to Student t at the seed level, right
    /// with few seeds), percentile (the paper's), expanded, student.
    #[arg(long, default_value = "calibrated")]
    pub interval: IntervalMethod,
    /// Alternative hypothesis of the p-value of delta: greater (H0: delta <= 0), less (H0:
    /// delta >= 0) or two-sided (H0: delta = 0).
    #[arg(long, default_value = "greater")]
    pub alternative: Alternative,
    /// One analysis per cell of these columns (task, layer, step), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Resample examples even when the table has a cluster column (as the original library does).
    #[arg(long)]
    pub ignore_clusters: bool,
    /// Seed of the random draws (same seed, same numbers on any machine).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = rng_seed)]
    pub rng_seed: u64,
}

/// `mb-stats bootstrap`.
#[derive(clap::Args, Debug)]
pub struct BootstrapArgs {
    /// Results table (Parquet, schema v1).
    pub results: PathBuf,
    /// Metric: accuracy, precision, recall, f1, macro-f1, mcc, pearson, spearman, auc, mean.
    #[arg(long, default_value = "accuracy")]
    pub metric: Metric,
    /// The analysis.
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Also report P(delta >= X).
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = finite)]
    pub threshold_abs: Option<f64>,
    /// Also report P(delta / base >= X).
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = finite)]
    pub threshold_rel: Option<f64>,
    /// Write the summary to this file: .csv, .json, .md or .tex.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write every replicate to this Parquet file.
    #[arg(long)]
    pub samples: Option<PathBuf>,
}

/// `mb-stats seeds`.
#[derive(clap::Args, Debug)]
pub struct SeedsArgs {
    /// Results table (Parquet, schema v1).
    pub results: PathBuf,
    /// Metric: accuracy, precision, recall, f1, macro-f1, mcc, pearson, spearman, auc, mean.
    #[arg(long, default_value = "accuracy")]
    pub metric: Metric,
    /// The analysis.
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Significance level of the per-seed and procedure conclusions.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true, value_parser = probability)]
    pub alpha: f64,
    /// Permutations of the no-seed-effect test (when seeds have several runs).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true, value_parser = positive)]
    pub permutations: usize,
    /// Write the result to this file: .csv, .json, .md or .tex.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `mb-stats curve`.
#[derive(clap::Args, Debug)]
pub struct CurveArgs {
    /// Results table (Parquet, schema v1).
    pub results: PathBuf,
    /// Metric: accuracy, precision, recall, f1, macro-f1, mcc, pearson, spearman, auc, mean.
    #[arg(long, default_value = "accuracy")]
    pub metric: Metric,
    /// The analysis (--by task or layer splits curves).
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Tolerance (in metric units, e.g. 0.01 = one accuracy point) of "within the final value".
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true, value_parser = non_negative)]
    pub tolerance: f64,
    /// Write the result to this file: .csv, .json, .md or .tex.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `mb-stats variance`.
#[derive(clap::Args, Debug)]
pub struct VarianceArgs {
    /// Results table (Parquet, schema v1).
    pub results: PathBuf,
    /// A per-example metric: accuracy or mean.
    #[arg(long, default_value = "accuracy")]
    pub metric: Metric,
    /// The analysis (--by splits cells, --confidence the intervals; the seed test beside the
    /// components is the one `seeds` runs, with --nboot replicates when seeds have one run).
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Write the result to this file: .csv, .json, .md or .tex.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `mb-stats power`.
#[derive(clap::Args, Debug)]
pub struct PowerArgs {
    /// Results table (Parquet, schema v1).
    pub results: PathBuf,
    /// The effect to detect, in metric units (e.g. 0.01 = one accuracy point).
    #[arg(long, allow_negative_numbers = true, value_parser = finite)]
    pub effect: f64,
    /// Metric: accuracy, precision, recall, f1, macro-f1, mcc, pearson, spearman, auc, mean.
    #[arg(long, default_value = "accuracy")]
    pub metric: Metric,
    /// The comparison and the test (nboot is the inner bootstrap of each simulated study).
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Significance level.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true, value_parser = probability)]
    pub alpha: f64,
    /// Seeds per procedure to try, comma-separated (default: 2, 5, 10, 25).
    #[arg(long, value_delimiter = ',', default_value = "2,5,10,25", allow_negative_numbers = true, value_parser = positive)]
    pub seeds: Vec<usize>,
    /// Examples (or clusters) to try, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, value_parser = positive)]
    pub examples: Vec<usize>,
    /// Simulated studies per size.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true, value_parser = positive)]
    pub simulations: usize,
    /// Write the table to this file: .csv, .json, .md or .tex.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also draw power against seeds to STEM.svg and STEM.png.
    #[arg(long, value_name = "STEM")]
    pub plot: Option<PathBuf>,
}

/// `mb-stats report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Results table (Parquet, schema v1).
    pub results: PathBuf,
    /// Folder to write tables, figures and report.ipynb into (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Metrics to report, comma-separated.
    #[arg(long = "metric", value_delimiter = ',', default_value = "accuracy")]
    pub metrics: Vec<Metric>,
    /// The analysis.
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Log-scaled step axis in learning curves.
    #[arg(long)]
    pub log_steps: bool,
    /// Add a power section for detecting this effect (metric units; needs a comparison).
    #[arg(long, allow_negative_numbers = true, value_parser = finite)]
    pub effect: Option<f64>,
    /// Table formats besides CSV (always written: the notebook reads it), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "md,tex")]
    pub formats: Vec<TableFormatArg>,
}

/// `mb-stats bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Replicates per timing.
    #[arg(long, default_value_t = ReplicateCount::DEFAULT, allow_negative_numbers = true)]
    pub nboot: ReplicateCount,
    /// Timed repetitions per metric (the median is reported).
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = positive)]
    pub repeats: usize,
    /// Metrics to time (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<Metric>,
    /// Interval method of the timed analyses.
    #[arg(long, default_value = "calibrated")]
    pub interval: IntervalMethod,
    /// Write the synthetic design as a results table here (to time other tools on it).
    #[arg(long)]
    pub write_design: Option<PathBuf>,
}

// Numbers are checked where they enter: clap's message names the flag and the value
// ("invalid value 'nan' for '--effect <EFFECT>': expected a finite number"), exit code 2.

/// A positive number of seconds, below a year.
fn positive_seconds(text: &str) -> std::result::Result<f64, String> {
    match finite(text) {
        Ok(x) if x > 0.0 && x < 3.2e7 => Ok(x),
        _ => Err("expected a positive number of seconds".into()),
    }
}

/// `--shard`: one part of the plan, or `auto` (the job-array task's part, read from the
/// scheduler's environment when the run starts).
#[derive(Clone, Copy, Debug)]
pub enum ShardArg {
    /// `auto`.
    Auto,
    /// `I/N`.
    Part(Shard),
}

/// `I/N` or `auto`.
fn shard(text: &str) -> std::result::Result<ShardArg, String> {
    match text.trim() {
        "auto" => Ok(ShardArg::Auto),
        part => part.parse().map(ShardArg::Part).map_err(|e| format!("{e}, or auto")),
    }
}

/// The command line that runs the analysis `command` with `analysis` on `results`, writing
/// `output` (the report's notebook shows these); `AnalysisArgs::options` parses it back to
/// `analysis`.
pub fn command_line(command: report::Command, analysis: &Options, results: &str, output: &str) -> String {
    let mut parts = vec![format!("mb-stats {}", command.name()), report::shell_quote(results)];
    parts.push(format!("--metric {}", analysis.metric));
    if let Some((b, t)) = &analysis.comparison {
        parts.push(format!(
            "--base {} --treatment {}",
            report::shell_quote(&b.to_string()),
            report::shell_quote(&t.to_string())
        ));
        if analysis.pairing == Pairing::Paired {
            parts.push("--paired".into());
        }
        parts.push(format!("--alternative {}", analysis.alternative));
    }
    parts.push(format!(
        "--sample {} --nboot {} --confidence {} --interval {}",
        analysis.sampling, analysis.nboot, analysis.confidence, analysis.interval
    ));
    if !analysis.by.is_empty() {
        let by: Vec<&str> = analysis.by.iter().map(|k| k.name()).collect();
        parts.push(format!("--by {}", by.join(",")));
    }
    if analysis.ignore_clusters {
        parts.push("--ignore-clusters".into());
    }
    parts.push(format!(
        "--rng-seed {} -o {}",
        analysis.rng_seed,
        report::shell_quote(output)
    ));
    parts.join(" ")
}

impl AnalysisArgs {
    /// The analysis options for `metric`; errors name the flag.
    pub fn options(&self, metric: Metric) -> Result<Options> {
        let filter = |flag: &str, text: &str| Filter::parse(text).map_err(|e| input(format!("{flag} {text}: {e}")));
        let comparison = match (&self.base, &self.treatment) {
            (Some(b), Some(t)) => Some((filter("--base", b)?, filter("--treatment", t)?)),
            _ => None,
        };
        let by = self
            .by
            .iter()
            .map(|name| Key::cell(name).map_err(|e| input(format!("--by {name}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Options {
            metric,
            comparison,
            pairing: if self.paired {
                Pairing::Paired
            } else {
                Pairing::Unpaired
            },
            sampling: self.sample,
            nboot: self.nboot,
            confidence: self.confidence,
            interval: self.interval,
            alternative: self.alternative,
            by,
            ignore_clusters: self.ignore_clusters,
            rng_seed: self.rng_seed,
            threshold_abs: None,
            threshold_rel: None,
        })
    }
}

impl BootstrapArgs {
    /// The analysis options; errors name the flag.
    pub fn options(&self) -> Result<Options> {
        let metric = self.metric;
        Ok(Options {
            threshold_abs: self.threshold_abs,
            threshold_rel: self.threshold_rel,
            ..self.analysis.options(metric)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of a command line as a POSIX shell splits them (plain words and the single
    /// quotes of `report::shell_quote`, with `'\''` for a quote inside).
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted, mut started) = (Vec::new(), String::new(), false, false);
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('\'', _) => (quoted, started) = (!quoted, true),
                ('\\', false) => (word, started) = (word + &chars.next().unwrap().to_string(), true),
                (' ', false) => {
                    if started {
                        words.push(std::mem::take(&mut word));
                    }
                    started = false;
                }
                (c, _) => (word, started) = (word + &c.to_string(), true),
            }
        }
        if started {
            words.push(word);
        }
        words
    }

    /// Every analysis command the report writes, parsed back by the command line's own parser,
    /// gives the options it was written from.
    #[test]
    fn report_commands_parse_back_to_their_options() {
        let comparison = (
            Filter::parse("group=it's base,task=a b").unwrap(),
            Filter::parse("group=cda").unwrap(),
        );
        let options = [
            Options::default(),
            Options {
                metric: Metric::F1,
                comparison: Some(comparison.clone()),
                pairing: Pairing::Paired,
                sampling: Sampling::Seeds,
                nboot: ReplicateCount::try_from(250usize).unwrap(),
                confidence: 0.9,
                interval: IntervalMethod::Percentile,
                alternative: Alternative::TwoSided,
                by: vec![Key::Task, Key::Step],
                ignore_clusters: true,
                rng_seed: 7,
                ..Options::default()
            },
            Options {
                comparison: Some(comparison),
                ..Options::default()
            },
        ];
        for analysis in &options {
            for command in [
                report::Command::Bootstrap,
                report::Command::Seeds,
                report::Command::Variance,
            ] {
                let line = command_line(command, analysis, "my results.parquet", "out.csv");
                let words = shell_words(&line);
                assert_eq!(words[2], "my results.parquet", "{line}");
                let parsed = Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{line}: {e}"));
                let (args, metric, output) = match parsed.command {
                    Command::Bootstrap(a) => (a.analysis, a.metric, a.output),
                    Command::Seeds(a) => (a.analysis, a.metric, a.output),
                    Command::Variance(a) => (a.analysis, a.metric, a.output),
                    other => panic!("{line}: parsed as {other:?}"),
                };
                assert_eq!(&args.options(metric).unwrap(), analysis, "{line}");
                assert_eq!(output, Some(PathBuf::from("out.csv")), "{line}");
            }
        }
    }
}
