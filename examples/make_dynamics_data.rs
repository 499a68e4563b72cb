//! Writes a synthetic results table shaped like a full MultiBERTs learning-dynamics study, to time
//! `mb-stats report` on a large design: 165 checkpoints (seeds 0–24 at 2M steps, seeds 0–4 at the
//! 28 intermediate steps) × 872 examples (the SST-2 dev size), one run each.
//!
//! `cargo run --release --example make_dynamics_data -- OUT.parquet`

use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable, parquet};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: make_dynamics_data OUT.parquet");
        std::process::exit(2);
    };
    let intermediate: Vec<i64> = (0..=200)
        .step_by(20)
        .chain((300..2000).step_by(100))
        .map(|k| k * 1000)
        .collect();
    let mut checkpoints: Vec<(i64, i64)> = (0..25).map(|s| (s, 2_000_000)).collect();
    checkpoints.extend((0..5).flat_map(|s| intermediate.iter().map(move |&k| (s, k))));
    let mut rng = ChaCha8Rng::seed_from_u64(165);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let examples = 872;
    let difficulty: Vec<f64> = (0..examples).map(|_| 4.0 * uniform() - 2.0).collect();
    let label: Vec<i64> = (0..examples).map(|_| i64::from(uniform() < 0.5)).collect();
    let mut t = ResultsTable {
        group: Default::default(),
        seed: Vec::new(),
        step: Some(Vec::new()),
        run: None,
        task: None,
        layer: None,
        example: ExampleIds::Int(Vec::new()),
        label: Some(Numbers::Int(Vec::new())),
        prediction: Some(Numbers::Int(Vec::new())),
        score: None,
        cluster: None,
        extra: Vec::new(),
        metadata: vec![(
            "mb_stats.source".into(),
            "cargo run --release --example make_dynamics_data".into(),
        )],
    };
    for &(seed, step) in &checkpoints {
        let skill = 2.5 * (1.0 - (-(step as f64) / 150_000.0).exp()) + 0.1 * seed as f64 % 0.3;
        for e in 0..examples {
            let correct = uniform() < 1.0 / (1.0 + (-(skill - difficulty[e])).exp());
            t.group.push(Some("multiberts"));
            t.seed.push(seed);
            t.step.as_mut().unwrap().push(Some(step));
            if let ExampleIds::Int(ids) = &mut t.example {
                ids.push(e as i64);
            }
            if let (Some(Numbers::Int(l)), Some(Numbers::Int(p))) = (&mut t.label, &mut t.prediction) {
                l.push(Some(label[e]));
                p.push(Some(if correct { label[e] } else { 1 - label[e] }));
            }
        }
    }
    if let Err(e) = parquet::write(&t, std::path::Path::new(&out)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    println!(
        "wrote {} checkpoints × {examples} examples = {} rows to {out}",
        checkpoints.len(),
        t.len()
    );
}
