//! The GEMM under the BERT runtime beside PyTorch's, at BERT-base shapes, in one run:
//!
//!     cargo run --release --example gemm_kernels -- [ROWS] [PYTHON]
//!
//! Times `x · W + b` for the four projections of a BERT-base layer with ROWS tokens (default
//! 2280, the block size of an SST-2 run) with the runtime's own kernel (`bert::cpu::Linear`: one
//! single-threaded `gemm` call per thread over its own rows, weights stored `[in, out]`), then,
//! given PYTHON, PyTorch's
//! `torch.nn.functional.linear` on the same shapes and thread count (first, in a child process).
//! Each side allocates its output per call, as in a forward pass; best of 6; GFLOP/s.

use std::time::Instant;

use candle_core::{Device, Tensor};
use mb_stats_bert::cpu::Linear;

const SHAPES: [(usize, usize, &str); 4] = [
    (768, 2304, "query/key/value"),
    (768, 768, "attention output"),
    (768, 3072, "intermediate"),
    (3072, 768, "output"),
];

const TORCH: &str = r#"
import sys, time, torch
rows, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
for inner, out in [(768, 2304), (768, 768), (768, 3072), (3072, 768)]:
    x, w, b = torch.randn(rows, inner), torch.randn(out, inner), torch.randn(out)
    times = []
    for _ in range(6):
        start = time.perf_counter()
        torch.nn.functional.linear(x, w, b)
        times.append(time.perf_counter() - start)
    print(2 * rows * inner * out / min(times) / 1e9)
"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(2280, |r| r.parse().expect("ROWS: a number"));
    let python = args.next();
    let threads = rayon::current_num_threads();
    println!("GEMM at BERT-base shapes, {rows} rows, {threads} threads, best of 6 (GFLOP/s)");
    let torch: Vec<f64> = match &python {
        Some(python) => {
            let output = std::process::Command::new(python)
                .args(["-c", TORCH, &rows.to_string(), &threads.to_string()])
                .output()
                .expect("running PYTHON");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|l| l.parse().unwrap())
                .collect()
        }
        None => Vec::new(),
    };
    for (i, &(inner, out, name)) in SHAPES.iter().enumerate() {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (rows, inner), &device).expect("input");
        let w = Tensor::randn(0f32, 0.02, (inner, out), &device).expect("weight");
        let b = Tensor::randn(0f32, 0.02, out, &device).expect("bias");
        let best = (0..6)
            .map(|_| {
                let start = Instant::now();
                let y = x
                    .apply_op3_no_bwd(&w, &b, &Linear { activation: None })
                    .expect("linear");
                std::hint::black_box(y);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        let flops = 2.0 * (rows * inner * out) as f64;
        print!(
            "{name:>17} {inner:>4} → {out:<4}  gemm (ours) {:>6.1}",
            flops / best / 1e9
        );
        match torch.get(i) {
            Some(t) => println!("  PyTorch {t:>6.1}  ratio {:.2}", flops / best / 1e9 / t),
            None => println!(),
        }
    }
}
