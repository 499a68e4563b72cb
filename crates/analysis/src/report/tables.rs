//! The per-seed tables: every seed's own estimate as CSV, Markdown and LaTeX, and as the
//! notebook's text table.

use std::path::{Path, PathBuf};

use super::ReportOptions;
use crate::analysis::{Report, SeedRow};
use crate::export::{self, latex::booktabs, markdown::pipe_table, table::Grid};
use mb_stats_core::metric::Metric;
use mb_stats_files::error::Result;
use mb_stats_files::output::atomic_write;

/// The per-seed text table.
pub(super) fn seed_table(seeds: &[SeedRow], metric: Metric) -> Grid {
    let header = ["cell", "group", "seed", "runs", "estimate [CI, examples only]"]
        .map(String::from)
        .to_vec();
    let body = seeds
        .iter()
        .map(|s| {
            vec![
                s.cell.clone(),
                s.group.clone(),
                s.seed.to_string(),
                s.n_runs.to_string(),
                export::format_interval(metric, &s.interval),
            ]
        })
        .collect();
    Grid { header, body }
}

/// Writes `seeds-{m}.csv` (full precision) and, as asked, `.md` and `.tex`.
pub(super) fn seed_tables(
    seeds: &[SeedRow],
    report: &Report,
    options: &ReportOptions,
    dir: &Path,
    m: &str,
) -> Result<Vec<PathBuf>> {
    let mut csv = ::csv::Writer::from_writer(Vec::new());
    let record = |w: &mut ::csv::Writer<Vec<u8>>, r: Vec<String>| w.write_record(r).expect("writing to memory");
    record(
        &mut csv,
        [
            "cell",
            "group",
            "seed",
            "n_runs",
            "estimate",
            "boot_mean",
            "low",
            "high",
            "nboot",
            "confidence",
            "sampling",
            "rng_seed",
        ]
        .map(String::from)
        .to_vec(),
    );
    let method = &report.method;
    for s in seeds {
        let i = &s.interval;
        record(
            &mut csv,
            vec![
                s.cell.clone(),
                s.group.clone(),
                s.seed.to_string(),
                s.n_runs.to_string(),
                i.estimate.to_string(),
                i.boot_mean.to_string(),
                i.low.to_string(),
                i.high.to_string(),
                method.nboot.to_string(),
                method.confidence.to_string(),
                "examples".into(),
                method.rng_seed.to_string(),
            ],
        );
    }
    let grid = seed_table(seeds, method.metric);
    let note = format!(
        "Per-seed estimates: runs averaged within the seed; {}% {} intervals resampling {} only, nboot {}, rng seed {}.",
        method.confidence * 100.0,
        method.interval,
        method.unit(),
        method.nboot,
        method.rng_seed
    );
    let mut files = vec![("csv", csv.into_inner().expect("writing to memory"))];
    if options.markdown {
        files.push(("md", format!("{}\n{note}\n", pipe_table(&grid)).into_bytes()));
    }
    if options.latex {
        files.push((
            "tex",
            format!(
                "% requires \\usepackage{{booktabs}}\n{}\\par\\footnotesize {note}\n",
                booktabs(&grid)
            )
            .into_bytes(),
        ));
    }
    files
        .into_iter()
        .map(|(ext, bytes)| {
            let path = dir.join(format!("seeds-{m}.{ext}"));
            atomic_write(&path, &bytes).map(|_| path)
        })
        .collect()
}
