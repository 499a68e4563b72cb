//! The coverage harness: the interval methods on a grid of simulated studies with exact truths
//! (`mb_stats_analysis::simulation`), as committed in `docs/coverage.md`.
//!
//! ```sh
//! cargo run --release --example coverage -- [--datasets 200] [--nboot 500] [--seeds 3,5,10,25] > docs/coverage.md
//! ```
//!
//! Grid: seeds × seed sd (0.3 low, 0.8 high) × runs per seed (1, 3) × examples (100, 1,000) ×
//! clusters (none; 5 examples per cluster carrying half the example variance), for one
//! procedure, paired and unpaired comparisons (δ = 0 and a planted δ = 0.03), a one-seed
//! baseline, and a 4-step learning curve. Per grid point and method: coverage of 95% intervals,
//! their mean width, and the rejection rate of the two-sided test at α = 0.05, with Monte-Carlo
//! standard errors.

use mb_stats_analysis::simulation::{Analysis, Scenario, Tally, standard_error};
use mb_stats_core::interval::IntervalMethod;

struct Args {
    datasets: usize,
    nboot: usize,
    seeds: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args {
        datasets: 200,
        nboot: 500,
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

/// One (analysis, seeds, method) of the summary, with per grid point (coverage, width ratio to
/// percentile, rejection, …).
type Summary = (String, usize, IntervalMethod, Vec<(f64, f64, f64, f64)>);

fn main() {
    let args = args();
    let methods = IntervalMethod::ALL;
    let analyses = [
        Analysis::Single,
        Analysis::Paired(0.0),
        Analysis::Paired(0.03),
        Analysis::Unpaired(0.0),
        Analysis::Unpaired(0.03),
        Analysis::OneSeedBaseline(0.0),
        Analysis::OneSeedBaseline(0.03),
        Analysis::Curve,
    ];
    let started = std::time::Instant::now();
    let mut grid_point = 0u64;
    // (analysis, seeds, method) → per grid point (coverage, width ratio to percentile, rejection).
    let mut summary: Vec<Summary> = Vec::new();
    println!("# Coverage of the interval methods (full grid)\n");
    println!(
        "Made by `cargo run --release --example coverage -- --datasets {} --nboot {}`: {} simulated data sets \
         per grid point, nboot {}, 95% intervals, two-sided tests at α = 0.05. Truths are exact (quadrature). \
         Model: `src/simulation.rs` (example sd 1.5, seed × example sd 0.5, base logit 0.5).\n",
        args.datasets, args.nboot, args.datasets, args.nboot
    );
    println!(
        "| analysis | seeds | seed sd | runs | examples | clusters | method | coverage | width | rejection | band coverage | band width |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &analysis in &analyses {
        for &seeds in &args.seeds {
            for seed_sd in [0.3, 0.8] {
                for runs in [1, 3] {
                    for examples in [100, 1000] {
                        for clusters in [None, Some((5, 0.5))] {
                            let scenario = Scenario {
                                seeds,
                                runs,
                                examples,
                                clusters,
                                seed_sd,
                                example_sd: 1.5,
                                interaction_sd: 0.5,
                                logit: 0.5,
                            };
                            // Each grid point has its own random numbers (independent rows).
                            grid_point += 1;
                            let tallies = scenario.run(analysis, &methods, args.datasets, args.nboot, grid_point);
                            let percentile_width = tallies[1].mean_width();
                            for (method, t) in methods.iter().zip(&tallies) {
                                print_row(analysis, &scenario, *method, t);
                                let entry = (analysis_name(analysis), seeds, *method);
                                let point = (
                                    t.coverage(),
                                    t.mean_width() / percentile_width,
                                    t.rejection(),
                                    t.band_coverage(),
                                );
                                match summary.iter_mut().find(|s| (s.0.clone(), s.1, s.2) == entry) {
                                    Some(s) => s.3.push(point),
                                    None => summary.push((entry.0, entry.1, entry.2, vec![point])),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!("\n# Summary over the grid\n");
    println!(
        "Per analysis, number of seeds and method, over the 16 grid points (seed sd × runs × examples × clusters): \
         the range of coverage, the mean width relative to the percentile interval, and the range of rejection \
         rates (at δ = 0 this is the test's level).\n"
    );
    println!(
        "| analysis | seeds | method | coverage min–max | width / percentile | rejection min–max | band coverage min–max |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (analysis, seeds, method, points) in &summary {
        let range = |f: fn(&(f64, f64, f64, f64)) -> f64| {
            let v: Vec<f64> = points.iter().map(f).collect();
            (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let (c0, c1) = range(|p| p.0);
        let width = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        let (r0, r1) = range(|p| p.2);
        let (b0, b1) = range(|p| p.3);
        let curve = analysis.starts_with("curve");
        let comparison = analysis.contains('δ');
        println!(
            "| {analysis} | {seeds} | {method} | {c0:.3}–{c1:.3} | {width:.2} | {} | {} |",
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
    println!(
        "\nMonte-Carlo standard error of a share near 0.95: {:.3}; near 0.05: {:.3}. Wall time {:.0} s.",
        standard_error(0.95, args.datasets),
        standard_error(0.05, args.datasets),
        started.elapsed().as_secs_f64()
    );
}

fn print_row(analysis: Analysis, s: &Scenario, method: IntervalMethod, t: &Tally) {
    let se = |p: f64| standard_error(p, t.datasets);
    let comparison = !matches!(analysis, Analysis::Single | Analysis::Curve);
    let curve = analysis == Analysis::Curve;
    println!(
        "| {} | {} | {} | {} | {} | {} | {method} | {:.3} ± {:.3} | {:.4} | {} | {} | {} |",
        analysis_name(analysis),
        s.seeds,
        s.seed_sd,
        s.runs,
        s.examples,
        if s.clusters.is_some() { "5/cluster" } else { "none" },
        t.coverage(),
        se(t.coverage()),
        t.mean_width(),
        if comparison {
            format!("{:.3} ± {:.3}", t.rejection(), se(t.rejection()))
        } else {
            String::new()
        },
        if curve {
            format!("{:.3} ± {:.3}", t.band_coverage(), se(t.band_coverage()))
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
