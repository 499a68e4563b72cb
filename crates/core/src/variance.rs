//! Variance components of a per-example metric in the crossed design seeds × examples with runs
//! nested in seeds, by the method of moments (expected mean squares of the balanced random-effects
//! ANOVA):
//!
//! ```text
//! y[s,r,e] = μ + seed[s] + run[r(s)] + example[e] + (seed × example)[s,e] + residual[s,r,e]
//!
//! E[MS_residual] = σ²_res, E[MS_s×e] = σ²_res + R σ²_s×e, E[MS_run] = σ²_res + N σ²_run,
//! E[MS_example] = σ²_res + R σ²_s×e + S R σ²_example,
//! E[MS_seed] = σ²_res + R σ²_s×e + N σ²_run + R N σ²_seed.
//! ```
//!
//! With one run per seed, run and residual are not identifiable: the run component is folded
//! into the seed component and the residual into seed × example. Estimates may be negative
//! (sampling error); implied standard errors use them truncated at 0.

/// The estimated components.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Components {
    /// Pretraining seed.
    pub seed: f64,
    /// Run within seed (NaN with one run per seed).
    pub run: f64,
    /// Example.
    pub example: f64,
    /// Seed × example interaction (with one run per seed: plus the residual).
    pub seed_example: f64,
    /// Residual (NaN with one run per seed).
    pub residual: f64,
}

impl Components {
    /// The components in a fixed order with their names.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("seed", self.seed),
            ("run", self.run),
            ("example", self.example),
            ("seed_x_example", self.seed_example),
            ("residual", self.residual),
        ]
    }

    /// The standard error of the procedure estimate (mean over seeds, runs and examples) with
    /// `s` seeds, `r` runs per seed and `n` examples.
    pub fn standard_error(&self, s: f64, r: f64, n: f64) -> f64 {
        let c = |v: f64| if v.is_nan() { 0.0 } else { v.max(0.0) };
        (c(self.seed) / s
            + c(self.run) / (s * r)
            + c(self.example) / n
            + c(self.seed_example) / (s * n)
            + c(self.residual) / (s * r * n))
            .sqrt()
    }
}

/// The mean squares of the ANOVA: seed, run(seed), example, seed × example, residual.
/// `y[s][r][e]`; every seed has the same number of runs. Time: O(S · R · N).
pub fn mean_squares(y: &[Vec<Vec<f64>>]) -> [f64; 5] {
    let (s_n, r_n, e_n) = (y.len(), y[0].len(), y[0][0].len());
    let (s, r, n) = (s_n as f64, r_n as f64, e_n as f64);
    let seed_mean: Vec<f64> = y
        .iter()
        .map(|runs| runs.iter().flatten().sum::<f64>() / (r * n))
        .collect();
    let run_mean: Vec<Vec<f64>> = y
        .iter()
        .map(|runs| runs.iter().map(|v| v.iter().sum::<f64>() / n).collect())
        .collect();
    let seed_example: Vec<Vec<f64>> = y
        .iter()
        .map(|runs| (0..e_n).map(|e| runs.iter().map(|v| v[e]).sum::<f64>() / r).collect())
        .collect();
    let example_mean: Vec<f64> = (0..e_n)
        .map(|e| seed_example.iter().map(|v| v[e]).sum::<f64>() / s)
        .collect();
    let grand = seed_mean.iter().sum::<f64>() / s;
    let ss_seed = r * n * seed_mean.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
    let ss_run = n
        * (0..s_n)
            .map(|i| run_mean[i].iter().map(|m| (m - seed_mean[i]).powi(2)).sum::<f64>())
            .sum::<f64>();
    let ss_example = s * r * example_mean.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
    let ss_interaction = r
        * (0..s_n)
            .map(|i| {
                (0..e_n)
                    .map(|e| (seed_example[i][e] - seed_mean[i] - example_mean[e] + grand).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>();
    let ss_residual: f64 = (0..s_n)
        .map(|i| {
            (0..r_n)
                .map(|j| {
                    (0..e_n)
                        .map(|e| (y[i][j][e] - run_mean[i][j] - seed_example[i][e] + seed_mean[i]).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
        })
        .sum();
    let ms = |ss: f64, df: f64| if df > 0.0 { ss / df } else { f64::NAN };
    [
        ms(ss_seed, s - 1.0),
        ms(ss_run, s * (r - 1.0)),
        ms(ss_example, n - 1.0),
        ms(ss_interaction, (s - 1.0) * (n - 1.0)),
        ms(ss_residual, s * (r - 1.0) * (n - 1.0)),
    ]
}

/// Method-of-moments components from `y[s][r][e]` (balanced: the same runs for every seed).
pub fn components(y: &[Vec<Vec<f64>>]) -> Components {
    let (r, n, s) = (y[0].len() as f64, y[0][0].len() as f64, y.len() as f64);
    let [seed, run, example, interaction, residual] = mean_squares(y);
    if r < 2.0 {
        return Components {
            seed: (seed - interaction) / n,
            run: f64::NAN,
            example: (example - interaction) / s,
            seed_example: interaction,
            residual: f64::NAN,
        };
    }
    Components {
        seed: (seed - interaction - run + residual) / (r * n),
        run: (run - residual) / n,
        example: (example - interaction) / (s * r),
        seed_example: (interaction - residual) / r,
        residual,
    }
}

/// Satterthwaite's interval of a component estimated as Σ cᵢ MSᵢ from mean squares with
/// degrees of freedom dfᵢ: ν = (Σ cᵢ MSᵢ)² / Σ (cᵢ MSᵢ)²/dfᵢ, and [ν·est/χ²_ν(1 − α/2),
/// ν·est/χ²_ν(α/2)]. `None` when the estimate is not positive (no χ² scale) or a df is not.
pub fn satterthwaite_interval(terms: &[(f64, f64, f64)], confidence: f64) -> Option<(f64, f64)> {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let estimate: f64 = terms.iter().map(|(c, ms, _)| c * ms).sum();
    // Also refuses NaN: a positive estimate and positive degrees of freedom only.
    let positive = |x: f64| x.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater);
    if !positive(estimate) || terms.iter().any(|t| !positive(t.2)) {
        return None;
    }
    let spread: f64 = terms.iter().map(|(c, ms, df)| (c * ms).powi(2) / df).sum();
    let nu = estimate * estimate / spread;
    let chi = ChiSquared::new(nu).ok()?;
    let tail = (1.0 - confidence) / 2.0;
    Some((
        nu * estimate / chi.inverse_cdf(1.0 - tail),
        nu * estimate / chi.inverse_cdf(tail),
    ))
}

/// Satterthwaite intervals of the seed and run components (the components with few levels, S
/// seeds and S(R − 1) runs), in the order (seed, run); run is `None` with one run per seed.
pub fn seed_level_intervals(y: &[Vec<Vec<f64>>], confidence: f64) -> [Option<(f64, f64)>; 2] {
    let (r, n, s) = (y[0].len() as f64, y[0][0].len() as f64, y.len() as f64);
    let [seed, run, _, interaction, residual] = mean_squares(y);
    let df = [
        s - 1.0,
        s * (r - 1.0),
        n - 1.0,
        (s - 1.0) * (n - 1.0),
        s * (r - 1.0) * (n - 1.0),
    ];
    if r < 2.0 {
        return [
            satterthwaite_interval(&[(1.0 / n, seed, df[0]), (-1.0 / n, interaction, df[3])], confidence),
            None,
        ];
    }
    let k = 1.0 / (r * n);
    [
        satterthwaite_interval(
            &[
                (k, seed, df[0]),
                (-k, interaction, df[3]),
                (-k, run, df[1]),
                (k, residual, df[4]),
            ],
            confidence,
        ),
        satterthwaite_interval(&[(1.0 / n, run, df[1]), (-1.0 / n, residual, df[4])], confidence),
    ]
}

/// The components of a resample: `seeds` and `examples` list the drawn indices (with
/// repetition); a seed drawn twice counts as two seeds. Time: O(S · R · N).
pub fn resampled_components(y: &[Vec<Vec<f64>>], seeds: &[usize], examples: &[usize]) -> Components {
    let drawn: Vec<Vec<Vec<f64>>> = seeds
        .iter()
        .map(|&s| {
            y[s].iter()
                .map(|run| examples.iter().map(|&e| run[e]).collect())
                .collect()
        })
        .collect();
    components(&drawn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sums of squares partition the total sum of squares.
    #[test]
    fn sums_of_squares_add_up_to_the_total() {
        let mut x = 12345u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as f64 / (1u64 << 31) as f64
        };
        let (s, r, n) = (4, 3, 7);
        let y: Vec<Vec<Vec<f64>>> = (0..s)
            .map(|_| (0..r).map(|_| (0..n).map(|_| next()).collect()).collect())
            .collect();
        let grand = y.iter().flatten().flatten().sum::<f64>() / (s * r * n) as f64;
        let total: f64 = y.iter().flatten().flatten().map(|v| (v - grand).powi(2)).sum();
        let ms = mean_squares(&y);
        let dfs = [3.0, 8.0, 6.0, 18.0, 48.0];
        let parts: f64 = ms.iter().zip(dfs).map(|(m, d)| m * d).sum();
        assert!((parts - total).abs() < 1e-9 * total, "{parts} vs {total}");
    }

    #[test]
    fn satterthwaite_interval_is_the_chi_square_interval_of_one_mean_square() {
        // One term: ν = df, and the interval is df·MS/χ²_df quantiles (χ²_4: 0.4844, 11.1433).
        let (lo, hi) = satterthwaite_interval(&[(1.0, 2.0, 4.0)], 0.95).unwrap();
        assert!(
            (lo - 8.0 / 11.143_286_781).abs() < 1e-6 && (hi - 8.0 / 0.484_418_557).abs() < 1e-5,
            "{lo} {hi}"
        );
        assert_eq!(satterthwaite_interval(&[(1.0, 1.0, 4.0), (-1.0, 2.0, 8.0)], 0.95), None);
    }

    #[test]
    fn standard_error_follows_the_design() {
        let c = Components {
            seed: 0.04,
            run: 0.02,
            example: 0.5,
            seed_example: 0.1,
            residual: 1.0,
        };
        let se = c.standard_error(25.0, 5.0, 720.0);
        let expected: f64 =
            (0.04f64 / 25.0 + 0.02 / 125.0 + 0.5 / 720.0 + 0.1 / (25.0 * 720.0) + 1.0 / (125.0 * 720.0)).sqrt();
        assert!((se - expected).abs() < 1e-15);
        // Negative estimates count as zero.
        let negative = Components { seed: -0.01, ..c };
        assert!((negative.standard_error(25.0, 5.0, 720.0) - (expected.powi(2) - 0.04 / 25.0).sqrt()).abs() < 1e-15);
    }
}
