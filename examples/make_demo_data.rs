//! Writes the bundled demo results table, `data/demo-results.parquet`: a synthetic
//! coreference-like study (arms `base` and `cda`, 10 pretraining seeds × 2 fine-tuning runs ×
//! 120 examples in templates of 6). The test `tests/demo_data.rs` checks the committed file
//! against this generator.

use std::path::Path;

use mb_stats_analysis::results::parquet;
use mb_stats_analysis::synthetic::{self, DEMO_RNG_SEED, Study};

fn main() {
    let mut table = synthetic::classification(&Study::demo(), DEMO_RNG_SEED);
    table.task = Some(mb_stats_analysis::results::Texts::repeat(
        Some("coref-demo"),
        table.len(),
    ));
    table.metadata = vec![(
        "mb_stats.source".into(),
        "cargo run --release --example make_demo_data".into(),
    )];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-results.parquet");
    if let Err(e) = parquet::write(&table, &path) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    println!("wrote {} rows to {}", table.len(), path.display());
}
