//! Invariants of every analysis over random small designs (proptest): 1–8 seeds, 1–3 runs,
//! 2–60 examples, every metric, paired and unpaired comparisons, clusters, steps. Where an
//! analysis returns numbers they are finite, p-values lie in [0, 1], intervals have low ≤ high
//! and stay in the metric's range, every variance component's interval is non-negative and
//! contains its estimate; an interval it cannot give is NaN with an `n/a` note, and anything it
//! cannot compute at all is an error with a message, never a panic.

use mb_stats_analysis::analysis::{
    CurveOptions, Options, PowerOptions, SeedsOptions, bootstrap, curve, power, seeds, variance,
};
use mb_stats_analysis::results::filter::Key;
use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable};
use mb_stats_core::design::Pairing;
use mb_stats_core::metric::Metric;
use mb_stats_core::summary::Interval;
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// The shape of one random study.
#[derive(Clone, Debug)]
struct Shape {
    seeds: usize,
    runs: usize,
    examples: usize,
    steps: usize,
    cluster_size: Option<usize>,
    metric: Metric,
    paired: bool,
    /// Every prediction right: replicates without variation, where intervals must say n/a.
    perfect: bool,
    data_seed: u64,
}

fn shapes() -> impl Strategy<Value = Shape> {
    (
        1usize..=8,
        1usize..=3,
        2usize..=60,
        1usize..=3,
        prop::option::of(2usize..=5),
        0usize..Metric::ALL.len(),
        any::<bool>(),
        prop::bool::weighted(0.15),
        any::<u64>(),
    )
        .prop_map(
            |(seeds, runs, examples, steps, cluster_size, m, paired, perfect, data_seed)| Shape {
                seeds,
                runs,
                examples,
                steps,
                cluster_size,
                metric: Metric::ALL[m],
                paired,
                perfect,
                data_seed,
            },
        )
}

/// Two arms (`base`, `cda`) of the shape, random outcomes: binary labels and predictions (a
/// regression target and prediction for the correlations), scores in (0, 1); with `perfect`,
/// every prediction is the label.
fn table(shape: &Shape) -> ResultsTable {
    let mut rng = ChaCha8Rng::seed_from_u64(shape.data_seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let regression = matches!(shape.metric, Metric::Pearson | Metric::Spearman);
    let labels: Vec<f64> = (0..shape.examples)
        .map(|_| {
            if regression {
                uniform()
            } else {
                f64::from(uniform() < 0.5)
            }
        })
        .collect();
    let mut t = Rows::default();
    for group in ["base", "cda"] {
        for seed in 0..shape.seeds {
            let skill = uniform();
            for step in 0..shape.steps {
                for run in 0..shape.runs {
                    for (e, &label) in labels.iter().enumerate() {
                        let right = shape.perfect || uniform() < 0.3 + 0.5 * skill;
                        let prediction = match regression {
                            true if shape.perfect => label,
                            true => label * skill + uniform(),
                            false if right => label,
                            false => 1.0 - label,
                        };
                        t.group.push(group.to_string());
                        t.seed.push(seed as i64);
                        t.step.push(Some(1000 * (step as i64 + 1)));
                        t.run.push(Some(run as i64));
                        t.example.push(e as i64);
                        t.label.push(Some(label));
                        t.prediction.push(Some(prediction));
                        t.score.push(Some(uniform()));
                        t.cluster.push(shape.cluster_size.map(|c| format!("c{}", e / c)));
                    }
                }
            }
        }
    }
    ResultsTable {
        group: t.group.into(),
        seed: t.seed,
        step: Some(t.step),
        run: Some(t.run),
        task: None,
        layer: None,
        example: ExampleIds::Int(t.example),
        label: Some(Numbers::Float(t.label)),
        prediction: Some(Numbers::Float(t.prediction)),
        score: Some(t.score),
        cluster: shape.cluster_size.map(|_| t.cluster.into_iter().collect()),
        extra: Vec::new(),
        metadata: Vec::new(),
    }
}

#[derive(Default)]
struct Rows {
    group: Vec<String>,
    seed: Vec<i64>,
    step: Vec<Option<i64>>,
    run: Vec<Option<i64>>,
    example: Vec<i64>,
    label: Vec<Option<f64>>,
    prediction: Vec<Option<f64>>,
    score: Vec<Option<f64>>,
    cluster: Vec<Option<String>>,
}

fn options(shape: &Shape, comparison: bool) -> Options {
    Options {
        metric: shape.metric,
        comparison: comparison.then(|| ("group=base".parse().unwrap(), "group=cda".parse().unwrap())),
        pairing: if shape.paired {
            Pairing::Paired
        } else {
            Pairing::Unpaired
        },
        nboot: 60usize.try_into().unwrap(),
        by: vec![Key::Step],
        ..Options::default()
    }
}

/// An interval as the analyses must give it: finite ends in order inside `range`, or NaN ends
/// with a note that says `n/a` and why.
fn check_interval(i: &Interval, range: Option<(f64, f64)>, note: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(i.estimate.is_finite(), "{what}: estimate {}", i.estimate);
    if i.low.is_nan() || i.high.is_nan() {
        prop_assert!(i.low.is_nan() && i.high.is_nan(), "{what}: one end missing {i:?}");
        prop_assert!(note.contains("n/a"), "{what}: no interval and no reason ({note:?})");
        return Ok(());
    }
    prop_assert!(
        i.low.is_finite() && i.high.is_finite() && i.low <= i.high,
        "{what}: {i:?}"
    );
    if let Some((low, high)) = range {
        prop_assert!(low <= i.low && i.high <= high, "{what}: {i:?} outside [{low}, {high}]");
    }
    Ok(())
}

fn check_p(p: Option<f64>, what: &str) -> Result<(), TestCaseError> {
    if let Some(p) = p.filter(|p| !p.is_nan()) {
        prop_assert!((0.0..=1.0).contains(&p), "{what}: p {p}");
    }
    Ok(())
}

/// A refusal is a message (the design cannot carry the analysis), never a panic.
fn refused(what: &str, e: impl std::fmt::Display) {
    let message = e.to_string();
    assert!(!message.trim().is_empty(), "{what}: empty error");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_analysis_keeps_its_invariants(shape in shapes()) {
        let table = table(&shape);
        let metric = shape.metric;
        for comparison in [false, true] {
            match bootstrap(&table, &options(&shape, comparison)) {
                Ok(report) => {
                    for row in &report.rows {
                        let delta = row.p_value.is_some();
                        let range = if delta { metric.delta_range() } else { metric.range() };
                        check_interval(&row.interval, range, &row.note, &format!("bootstrap {}", row.group))?;
                        check_p(row.p_value, "bootstrap")?;
                        check_p(row.p_holm, "bootstrap Holm")?;
                        check_p(row.p_bh, "bootstrap BH")?;
                    }
                }
                Err(e) => refused("bootstrap", e),
            }
            let seeds_options = SeedsOptions { analysis: options(&shape, comparison), alpha: 0.05, permutations: 99 };
            match seeds(&table, &seeds_options) {
                Ok(report) => {
                    for s in &report.seeds {
                        let range = if s.p_value.is_some() { metric.delta_range() } else { metric.range() };
                        let note = if s.interval.low.is_nan() { "n/a" } else { "" };
                        check_interval(&s.interval, range, note, "seeds")?;
                        check_p(s.p_value, "seeds")?;
                    }
                    for h in &report.heterogeneity {
                        prop_assert!(h.result.statistic.is_finite());
                        check_p(Some(h.result.p_value), "heterogeneity")?;
                    }
                }
                Err(e) => refused("seeds", e),
            }
        }
        if matches!(metric, Metric::Accuracy | Metric::Mean) {
            match variance(&table, &options(&shape, false)) {
                Ok(report) => {
                    for row in &report.rows {
                        for ((name, estimate), (low, high)) in row.components.named().into_iter().zip(row.intervals) {
                            if estimate.is_nan() {
                                continue;
                            }
                            prop_assert!(estimate >= 0.0 && estimate.is_finite(), "{name}: {estimate}");
                            if low.is_nan() {
                                prop_assert!(high.is_nan(), "{name}: one end missing");
                                continue;
                            }
                            prop_assert!(0.0 <= low && low <= estimate && estimate <= high && high.is_finite(),
                                "{name}: {estimate} [{low}, {high}]");
                        }
                        if let Some(t) = &row.seed_test {
                            check_p(Some(t.result.p_value), "variance seed test")?;
                        }
                    }
                }
                Err(e) => refused("variance", e),
            }
        }
        if shape.steps >= 2 {
            let curve_options = CurveOptions { analysis: Options { by: Vec::new(), ..options(&shape, false) }, tolerance: 0.01 };
            match curve(&table, &curve_options) {
                Ok(report) => {
                    for point in report.series.iter().flat_map(|s| &s.points) {
                        let note = if point.interval.low.is_nan() { "n/a" } else { "" };
                        check_interval(&point.interval, metric.range(), note, "curve")?;
                        check_interval(&point.delta_last.interval, metric.delta_range(), if point.delta_last.interval.low.is_nan() { "n/a" } else { "" }, "curve delta")?;
                        check_p(Some(point.delta_last.p_value), "curve delta")?;
                        let (low, high) = point.band;
                        prop_assert!(low.is_nan() || low <= high, "band {low} {high}");
                    }
                }
                Err(e) => refused("curve", e),
            }
        }
        let power_options = PowerOptions {
            analysis: Options { nboot: 40usize.try_into().unwrap(), ..options(&shape, true) },
            effect: 0.05,
            alpha: 0.05,
            seeds: vec![shape.seeds.max(2)],
            examples: vec![shape.examples],
            simulations: 4,
        };
        match power(&table, &power_options) {
            Ok(report) => {
                for row in &report.rows {
                    prop_assert!((0.0..=1.0).contains(&row.power) && row.standard_error.is_finite(), "{row:?}");
                }
            }
            Err(e) => refused("power", e),
        }
    }
}
