//! The GEMM under the BERT runtime beside PyTorch's, at BERT-base shapes, alternating the two:
//!
//!     cargo run --release --example gemm_kernels -- [ROWS] [PYTHON] [ROUNDS]
//!
//! Times `x · Wᵀ + b` for the four projections of a BERT-base layer with ROWS tokens (default
//! 2280, the block size of an SST-2 run) through the runtime's own kernel (`bert::cpu::Linear`,
//! weights `[out, in]` as checkpoints store them), in f32 and with bf16 products, and, given
//! PYTHON, PyTorch's `torch.nn.functional.linear` on the same shapes and thread count, f32 and
//! bf16 (weights already bf16, as in a model cast to bf16). ROUNDS (default 5) times PyTorch then
//! us, best of 3 calls per shape each time, output allocated per call as in a forward pass; the
//! report gives each round's GFLOP/s summed over the four shapes and the median ratio.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use mb_stats_bert::cpu::Linear;

const SHAPES: [(usize, usize); 4] = [(768, 2304), (768, 768), (768, 3072), (3072, 768)];

const TORCH: &str = r#"
import sys, time, torch
rows, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
for dtype in [torch.float32, torch.bfloat16]:
    flops, seconds = 0.0, 0.0
    for inner, out in [(768, 2304), (768, 768), (768, 3072), (3072, 768)]:
        x, w, b = (torch.randn(rows, inner).to(dtype), torch.randn(out, inner).to(dtype),
                   torch.randn(out).to(dtype))
        times = []
        for _ in range(4):
            start = time.perf_counter()
            torch.nn.functional.linear(x, w, b)
            times.append(time.perf_counter() - start)
        flops += 2 * rows * inner * out
        seconds += min(times[1:])
    print(flops / seconds / 1e9)
"#;

/// GFLOP/s over the four shapes, best of 3 calls each after a warm-up, weights in `dtype`.
fn ours(rows: usize, dtype: DType) -> f64 {
    let device = Device::Cpu;
    let (mut flops, mut seconds) = (0.0, 0.0);
    for &(inner, out) in &SHAPES {
        let x = Tensor::randn(0f32, 1.0, (rows, inner), &device).expect("input");
        let w = Tensor::randn(0f32, 0.02, (out, inner), &device)
            .and_then(|w| w.to_dtype(dtype))
            .expect("weight");
        let b = Tensor::randn(0f32, 0.02, out, &device)
            .and_then(|b| b.to_dtype(dtype))
            .expect("bias");
        let best = (0..4)
            .map(|_| {
                let start = Instant::now();
                let y = x
                    .apply_op3_no_bwd(&w, &b, &Linear { activation: None })
                    .expect("linear");
                std::hint::black_box(y);
                start.elapsed().as_secs_f64()
            })
            .skip(1)
            .fold(f64::MAX, f64::min);
        flops += 2.0 * (rows * inner * out) as f64;
        seconds += best;
    }
    flops / seconds / 1e9
}

/// The CPU's peak GFLOP/s on every thread: 16 independent chains of f32 FMAs (`bf16`: of bf16
/// dot products, 2 multiply-adds per f32 lane) on registers only, as the micro-kernel's 24
/// accumulators would, without their loads (16 chains cover the instructions' latency).
fn peak(bf16: bool) -> f64 {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn chains(iterations: usize, bf16: bool) -> f32 {
        let mut acc = [_mm512_set1_ps(0.0); 16];
        let (x, y) = (_mm512_set1_ps(0.999), _mm512_set1_ps(1e-3));
        // SAFETY: same-size bit casts between 512-bit vectors.
        let (xb, yb) = unsafe {
            (
                std::mem::transmute::<__m512, __m512bh>(x),
                std::mem::transmute::<__m512, __m512bh>(y),
            )
        };
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = match bf16 {
                    true => _mm512_dpbf16_ps(*a, xb, yb),
                    false => _mm512_fmadd_ps(*a, x, y),
                };
            }
        }
        acc.iter().map(|a| _mm512_reduce_add_ps(*a)).sum()
    }
    let iterations = 2_000_000;
    let threads = rayon::current_num_threads();
    let start = Instant::now();
    // SAFETY: the kernels' features are checked by the caller.
    let sums: f32 = rayon::broadcast(|_| unsafe { chains(iterations, bf16) }).iter().sum();
    std::hint::black_box(sums);
    let per_op = if bf16 { 64.0 } else { 32.0 };
    (threads * iterations * 16) as f64 * per_op / start.elapsed().as_secs_f64() / 1e9
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(2280, |r| r.parse().expect("ROWS: a number"));
    let python = args.next().filter(|p| !p.is_empty());
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("ROUNDS: a number"));
    let threads = rayon::current_num_threads();
    println!("GEMM at BERT-base shapes, {rows} rows, {threads} threads (GFLOP/s over the 4 projections)");
    if is_x86_feature_detected!("avx512bf16") {
        // Best of 3: a loop that starts while a thread is still waking up reads low.
        let best = |bf16| (0..3).map(|_| peak(bf16)).fold(0.0, f64::max);
        println!(
            "peak (register-only loops, all threads, best of 3): f32 FMA {:.1}, bf16 dot product {:.1}",
            best(false),
            best(true)
        );
    }
    println!("round  ours f32  torch f32  ratio   ours bf16  torch bf16  ratio   ours bf16/f32");
    let (mut f32_ratios, mut bf16_ratios, mut own_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let torch: Vec<f64> = match &python {
            Some(python) => {
                let output = std::process::Command::new(python)
                    .args(["-c", TORCH, &rows.to_string(), &threads.to_string()])
                    .output()
                    .expect("running PYTHON");
                assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(|l| l.parse().expect("a number"))
                    .collect()
            }
            None => vec![f64::NAN; 2],
        };
        let (f32_rate, bf16_rate) = (ours(rows, DType::F32), ours(rows, DType::BF16));
        f32_ratios.push(f32_rate / torch[0]);
        bf16_ratios.push(bf16_rate / torch[1]);
        own_ratios.push(bf16_rate / f32_rate);
        println!(
            "{round:>5}  {f32_rate:>8.1}  {:>9.1}  {:>5.2}   {bf16_rate:>9.1}  {:>10.1}  {:>5.2}   {:>5.2}",
            torch[0],
            f32_rate / torch[0],
            torch[1],
            bf16_rate / torch[1],
            bf16_rate / f32_rate
        );
    }
    println!(
        "median ratios: f32 {:.2} × PyTorch, bf16 {:.2} × PyTorch bf16, our bf16 {:.2} × our f32",
        median(f32_ratios),
        median(bf16_ratios),
        median(own_ratios)
    );
}
