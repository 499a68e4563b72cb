//! Synthetic results tables with a known structure (arm effect, seed effect, run noise, example
//! difficulty), for the benchmark and the bundled demo data. Deterministic for a given RNG seed.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::results::{ExampleIds, Numbers, ResultsTable};

/// The shape and effect sizes of a synthetic study.
#[derive(Clone, Debug)]
pub struct Study {
    /// Arms: (group name, effect on the logit or on the slope).
    pub arms: Vec<(String, f64)>,
    /// Pretraining seeds per arm (the same seed ids in every arm, for paired designs).
    pub seeds: usize,
    /// Runs (fine-tuning seeds) per seed.
    pub runs: usize,
    /// Examples.
    pub examples: usize,
    /// Examples per cluster (`None`: no `cluster` column).
    pub cluster_size: Option<usize>,
    /// Standard deviation of the seed effect.
    pub seed_sd: f64,
    /// Standard deviation of the run effect.
    pub run_sd: f64,
    /// Standard deviation of example difficulty.
    pub example_sd: f64,
}

impl Study {
    /// The benchmark design of the MultiBERTs coreference study: 2 arms × 25 seeds × 5 runs ×
    /// 720 examples in 120 templates of 6.
    pub fn coref_like() -> Self {
        Self {
            arms: vec![("base".into(), 0.0), ("cda".into(), 0.1)],
            seeds: 25,
            runs: 5,
            examples: 720,
            cluster_size: Some(6),
            seed_sd: 0.3,
            run_sd: 0.2,
            example_sd: 1.5,
        }
    }
}

impl Study {
    /// The bundled demo (`data/demo-results.parquet`): a coreference-like study, smaller.
    /// Regenerate with `cargo run --release --example make_demo_data`.
    pub fn demo() -> Self {
        Self {
            seeds: 10,
            runs: 2,
            examples: 120,
            ..Self::coref_like()
        }
    }
}

/// The RNG seed of the bundled demo data.
pub const DEMO_RNG_SEED: u64 = 2022;

/// Standard normal and uniform variates from ChaCha8 (Box–Muller, written here so the demo data
/// never changes with a dependency upgrade).
pub(crate) struct Normal(pub(crate) ChaCha8Rng);

impl Normal {
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub(crate) fn sample(&mut self, sd: f64) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A classification study: binary `label`, `prediction`, positive-class probability `score`.
/// P(correct) = sigmoid(1 + arm + seed + run + example difficulty).
pub fn classification(study: &Study, rng_seed: u64) -> ResultsTable {
    generate(study, rng_seed, true, |rng, label, logit| {
        let p_correct = sigmoid(1.0 + logit);
        let correct = rng.uniform() < p_correct;
        let prediction = if correct { label } else { 1.0 - label };
        let score = if label == 1.0 { p_correct } else { 1.0 - p_correct };
        (label, prediction, score)
    })
}

/// A regression study: `label` a standard normal target per example, `prediction` = label ×
/// (1 + arm + seed + run) + noise, `score` = −squared error.
pub fn regression(study: &Study, rng_seed: u64) -> ResultsTable {
    generate(study, rng_seed, false, |rng, target, slope| {
        let prediction = target * (1.0 + slope) + rng.sample(1.0);
        (target, prediction, -(prediction - target).powi(2))
    })
}

/// Generates the table; `outcome(rng, example value, effect)` gives (label, prediction, score).
/// The example value is a 0/1 label for classification (difficulty enters the effect) and a
/// normal target for regression.
fn generate(
    study: &Study,
    rng_seed: u64,
    classification: bool,
    outcome: impl Fn(&mut Normal, f64, f64) -> (f64, f64, f64),
) -> ResultsTable {
    let mut rng = Normal(ChaCha8Rng::seed_from_u64(rng_seed));
    let difficulty: Vec<f64> = (0..study.examples).map(|_| rng.sample(study.example_sd)).collect();
    let value: Vec<f64> = (0..study.examples)
        .map(|_| {
            if classification {
                f64::from(rng.uniform() < 0.5)
            } else {
                rng.sample(1.0)
            }
        })
        .collect();
    let seed_effect: Vec<f64> = (0..study.seeds).map(|_| rng.sample(study.seed_sd)).collect();
    let mut t = Table::default();
    for (group, arm) in &study.arms {
        for (seed, s) in seed_effect.iter().enumerate() {
            let s = s + rng.sample(study.seed_sd / 2.0);
            for run in 0..study.runs {
                let r = rng.sample(study.run_sd);
                for e in 0..study.examples {
                    let effect = arm + s + r + if classification { difficulty[e] } else { 0.0 };
                    let (label, prediction, score) = outcome(&mut rng, value[e], effect);
                    t.push(
                        group,
                        seed,
                        run,
                        e,
                        study.cluster_size.map(|c| e / c),
                        (label, prediction, score),
                    );
                }
            }
        }
    }
    t.finish(classification)
}

#[derive(Default)]
struct Table {
    group: Vec<String>,
    seed: Vec<i64>,
    run: Vec<Option<i64>>,
    example: Vec<i64>,
    cluster: Vec<Option<String>>,
    label: Vec<f64>,
    prediction: Vec<f64>,
    score: Vec<Option<f64>>,
}

impl Table {
    fn push(&mut self, group: &str, seed: usize, run: usize, e: usize, cluster: Option<usize>, o: (f64, f64, f64)) {
        self.group.push(group.to_string());
        self.seed.push(seed as i64);
        self.run.push(Some(run as i64));
        self.example.push(e as i64);
        self.cluster.push(cluster.map(|c| format!("t{c}")));
        self.label.push(o.0);
        self.prediction.push(o.1);
        self.score.push(Some(o.2));
    }

    fn finish(self, classification: bool) -> ResultsTable {
        let numbers = |v: Vec<f64>| match classification {
            true => Numbers::Int(v.into_iter().map(|x| Some(x as i64)).collect()),
            false => Numbers::Float(v.into_iter().map(Some).collect()),
        };
        let has_clusters = self.cluster.iter().any(Option::is_some);
        ResultsTable {
            group: self.group.into(),
            seed: self.seed,
            step: None,
            run: Some(self.run),
            task: None,
            layer: None,
            example: ExampleIds::Int(self.example),
            label: Some(numbers(self.label)),
            prediction: Some(numbers(self.prediction)),
            score: Some(self.score),
            cluster: has_clusters.then(|| self.cluster.into_iter().collect()),
            extra: Vec::new(),
            metadata: Vec::new(),
        }
    }
}
