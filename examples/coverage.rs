//! The coverage harness: the interval methods on grids of simulated studies with exact truths
//! (`mb_stats_analysis::simulation`), as committed in `docs/coverage.md`.
//!
//! ```sh
//! cargo run --release --example coverage -- [--datasets 200] [--nboot 400] [--seeds 3,5,10,25] > docs/coverage.md
//! ```
//!
//! Three grids, each row a grid point and method: coverage of 95% intervals (of those given:
//! an interval the analyses report as `n/a` is counted apart), their mean width, the rejection
//! rate of the two-sided test at α = 0.05, with Monte-Carlo standard errors.
//! 1. Accuracy, every method: seeds × seed sd (0.3, 0.8) × runs per seed (1, 3) × examples
//!    (100, 1,000) × clusters (none; 5 examples per cluster carrying half the example
//!    variance), for one procedure, paired and unpaired comparisons (δ = 0 and a planted
//!    δ = 0.03), a one-seed baseline, and a 4-step learning curve.
//! 2. Every other metric (precision, recall, F1, macro-F1, MCC, AUC, Pearson, Spearman, mean),
//!    calibrated and percentile: 5 and 25 seeds (seed sd 0.5) × runs × examples × clusters, for
//!    one procedure and paired and unpaired comparisons at δ = 0.
//! 3. Small cells (accuracy, calibrated and percentile): 2–5 seeds × 3–5 examples, one run.

use mb_stats_analysis::simulation::{Analysis, Scenario, Tally, standard_error};
use mb_stats_core::interval::IntervalMethod;
use mb_stats_core::metric::Metric;

struct Args {
    datasets: usize,
    nboot: usize,
    seeds: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args {
        datasets: 200,
        nboot: 400,
        seeds: vec![3, 5, 10, 25],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        let fail = || -> ! {
            eprintln!(
                "coverage: {} {value}: expected --datasets N, --nboot N or --seeds S,S,...",
                pair[0]
            );
            std::process::exit(2)
        };
        match pair[0].as_str() {
            "--datasets" => a.datasets = value.parse().unwrap_or_else(|_| fail()),
            "--nboot" => a.nboot = value.parse().unwrap_or_else(|_| fail()),
            "--seeds" => a.seeds = value.split(',').map(|s| s.parse().unwrap_or_else(|_| fail())).collect(),
            _ => fail(),
        }
    }
    a
}

fn analysis_name(a: Analysis) -> String {
    match a {
        Analysis::Single => "one procedure".into(),
        Analysis::Paired(e) => format!("paired δ={e}"),
        Analysis::Unpaired(e) => format!("unpaired δ={e}"),
        Analysis::OneSeedBaseline(e) => format!("one-seed baseline δ={e}"),
        Analysis::Curve => "curve (4 steps)".into(),
    }
}

/// One grid point per (analysis, scenario).
struct Grid {
    title: &'static str,
    points: Vec<(Analysis, Scenario)>,
    methods: Vec<IntervalMethod>,
}

/// Per (grid, analysis, metric, seeds, method) of the summary: per grid point (coverage, width
/// ratio to percentile, rejection, band coverage, n/a share).
type Summary = Vec<((usize, String, usize, IntervalMethod), Vec<[f64; 5]>)>;

fn scenario(metric: Metric, seeds: usize, seed_sd: f64, runs: usize, examples: usize, clustered: bool) -> Scenario {
    Scenario {
        seeds,
        runs,
        examples,
        clusters: clustered.then_some((5, 0.5)),
        seed_sd,
        example_sd: 1.5,
        interaction_sd: 0.5,
        logit: 0.5,
        metric,
    }
}

fn grids(args: &Args) -> Vec<Grid> {
    let shapes = || {
        [1, 3].into_iter().flat_map(|runs| {
            [100, 1000]
                .into_iter()
                .flat_map(move |n| [false, true].map(move |c| (runs, n, c)))
        })
    };
    let mut accuracy = Vec::new();
    for analysis in [
        Analysis::Single,
        Analysis::Paired(0.0),
        Analysis::Paired(0.03),
        Analysis::Unpaired(0.0),
        Analysis::Unpaired(0.03),
        Analysis::OneSeedBaseline(0.0),
        Analysis::OneSeedBaseline(0.03),
        Analysis::Curve,
    ] {
        for &seeds in &args.seeds {
            for sd in [0.3, 0.8] {
                for (runs, n, c) in shapes() {
                    accuracy.push((analysis, scenario(Metric::Accuracy, seeds, sd, runs, n, c)));
                }
            }
        }
    }
    let mut metrics = Vec::new();
    for metric in [
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::MacroF1,
        Metric::Mcc,
        Metric::Auc,
        Metric::Pearson,
        Metric::Spearman,
        Metric::Mean,
    ] {
        for analysis in [Analysis::Single, Analysis::Paired(0.0), Analysis::Unpaired(0.0)] {
            for seeds in [5, 25] {
                for (runs, n, c) in shapes() {
                    metrics.push((analysis, scenario(metric, seeds, 0.5, runs, n, c)));
                }
            }
        }
    }
    let mut small = Vec::new();
    for analysis in [
        Analysis::Single,
        Analysis::Paired(0.0),
        Analysis::Unpaired(0.0),
        Analysis::OneSeedBaseline(0.0),
    ] {
        for seeds in 2..=5 {
            for examples in 3..=5 {
                small.push((analysis, scenario(Metric::Accuracy, seeds, 0.5, 1, examples, false)));
            }
        }
    }
    let two = vec![IntervalMethod::Calibrated, IntervalMethod::Percentile];
    vec![
        Grid {
            title: "Accuracy, every method",
            points: accuracy,
            methods: IntervalMethod::ALL.to_vec(),
        },
        Grid {
            title: "Every other metric (seed sd 0.5)",
            points: metrics,
            methods: two.clone(),
        },
        Grid {
            title: "Small cells: a handful of examples and seeds (accuracy, seed sd 0.5, one run)",
            points: small,
            methods: two,
        },
    ]
}

fn main() {
    let args = args();
    let started = std::time::Instant::now();
    let mut summary: Summary = Vec::new();
    println!("# Coverage of the interval methods\n");
    println!(
        "Made by `cargo run --release --example coverage -- --datasets {} --nboot {}`: {} simulated data sets \
         per grid point, nboot {}, 95% intervals (cut to the metric's range, as the analyses report them), \
         two-sided tests at α = 0.05. Truths are exact population values (closed forms and quadrature; \
         `crates/analysis/src/simulation.rs`, checked against a population of 200,000 examples). Model: example sd \
         1.5, seed × example sd 0.5, base logit 0.5. Coverage counts the intervals given; `n/a` is the share \
         of data sets whose interval was reported as n/a (replicates without variation).\n",
        args.datasets, args.nboot, args.datasets, args.nboot
    );
    let mut grid_point = 0u64;
    for (g, grid) in grids(&args).iter().enumerate() {
        println!("## {}\n", grid.title);
        println!(
            "| analysis | metric | seeds | seed sd | runs | examples | clusters | method | coverage | n/a | width | rejection | band coverage | band width |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (analysis, scenario) in &grid.points {
            // Each grid point has its own random numbers (independent rows).
            grid_point += 1;
            let tallies = scenario.run(*analysis, &grid.methods, args.datasets, args.nboot, grid_point);
            let percentile_width = grid
                .methods
                .iter()
                .position(|m| *m == IntervalMethod::Percentile)
                .map_or(f64::NAN, |i| tallies[i].mean_width());
            for (method, t) in grid.methods.iter().zip(&tallies) {
                print_row(*analysis, scenario, *method, t);
                let key = (g, analysis_name(*analysis), scenario.seeds, *method);
                let point = [
                    t.coverage(),
                    t.mean_width() / percentile_width,
                    t.rejection(),
                    t.band_coverage(),
                    t.undefined_share(),
                ];
                let key = (key.0, format!("{} · {}", key.1, scenario.metric), key.2, key.3);
                match summary.iter_mut().find(|s| s.0 == key) {
                    Some(s) => s.1.push(point),
                    None => summary.push((key, vec![point])),
                }
            }
        }
        println!();
    }
    print_summary(&summary);
    println!(
        "\nMonte-Carlo standard error of a share near 0.95: {:.3}; near 0.05: {:.3}. Wall time {:.0} s.",
        standard_error(0.95, args.datasets),
        standard_error(0.05, args.datasets),
        started.elapsed().as_secs_f64()
    );
}

fn print_summary(summary: &Summary) {
    println!("# Summary over the grids\n");
    println!(
        "Per grid, analysis and metric, number of seeds and method, over its grid points: the range of \
         coverage, the mean width relative to the percentile interval, the range of rejection rates (at δ = 0 \
         this is the test's level) and the largest n/a share.\n"
    );
    println!(
        "| analysis · metric | seeds | method | coverage min–max | width / percentile | rejection min–max | band coverage min–max | n/a max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for ((_, analysis, seeds, method), points) in summary {
        let range = |k: usize| {
            let v: Vec<f64> = points.iter().map(|p| p[k]).filter(|x| !x.is_nan()).collect();
            (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let (c0, c1) = range(0);
        let width = points.iter().map(|p| p[1]).sum::<f64>() / points.len() as f64;
        let (r0, r1) = range(2);
        let (b0, b1) = range(3);
        let (_, na) = range(4);
        let curve = analysis.starts_with("curve");
        let comparison = analysis.contains('δ');
        println!(
            "| {analysis} | {seeds} | {method} | {c0:.3}–{c1:.3} | {width:.2} | {} | {} | {na:.3} |",
            if comparison {
                format!("{r0:.3}–{r1:.3}")
            } else {
                String::new()
            },
            if curve {
                format!("{b0:.3}–{b1:.3}")
            } else {
                String::new()
            },
        );
    }
}

fn print_row(analysis: Analysis, s: &Scenario, method: IntervalMethod, t: &Tally) {
    let se = |p: f64, n: usize| standard_error(p, n);
    let comparison = !matches!(analysis, Analysis::Single | Analysis::Curve);
    let curve = analysis == Analysis::Curve;
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {method} | {:.3} ± {:.3} | {:.3} | {:.4} | {} | {} | {} |",
        analysis_name(analysis),
        s.metric,
        s.seeds,
        s.seed_sd,
        s.runs,
        s.examples,
        if s.clusters.is_some() { "5/cluster" } else { "none" },
        t.coverage(),
        se(t.coverage(), t.intervals.max(1)),
        t.undefined_share(),
        t.mean_width(),
        if comparison {
            format!("{:.3} ± {:.3}", t.rejection(), se(t.rejection(), t.datasets))
        } else {
            String::new()
        },
        if curve {
            format!("{:.3} ± {:.3}", t.band_coverage(), se(t.band_coverage(), t.datasets))
        } else {
            String::new()
        },
        if curve {
            format!("{:.4}", t.mean_band_width())
        } else {
            String::new()
        },
    );
}
