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

/// One mean square of the ANOVA and its degrees of freedom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanSquare {
    /// The mean square.
    pub value: f64,
    /// Its degrees of freedom.
    pub df: f64,
}

/// A variance component as a linear combination of mean squares, Σ_P c·MS − Σ_N c·MS with
/// every c > 0: `positive` holds P, `negative` holds N.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Combination {
    /// (c, MS) of the terms added.
    pub positive: Vec<(f64, MeanSquare)>,
    /// (c, MS) of the terms subtracted.
    pub negative: Vec<(f64, MeanSquare)>,
}

/// The upper-`a` quantile of F(n1, n2) (`n2` infinite: χ²_{n1}/n1).
fn upper_f(a: f64, n1: f64, n2: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor};
    if n2.is_infinite() {
        return ChiSquared::new(n1).map_or(f64::NAN, |c| c.inverse_cdf(1.0 - a) / n1);
    }
    FisherSnedecor::new(n1, n2).map_or(f64::NAN, |f| f.inverse_cdf(1.0 - a))
}

impl Combination {
    /// The method-of-moments estimate Σ_P c·MS − Σ_N c·MS (unbiased; may be negative).
    pub fn estimate(&self) -> f64 {
        let sum = |terms: &[(f64, MeanSquare)]| terms.iter().map(|(c, m)| c * m.value).sum::<f64>();
        sum(&self.positive) - sum(&self.negative)
    }

    /// The two-sided `confidence` interval of the component by the modified large-sample (MLS)
    /// method: Graybill & Wang (1980) for sums, Ting, Burdick, Graybill, Jeyaratnam & Lu (1990)
    /// for differences of mean squares (Burdick & Graybill 1992, "Confidence Intervals on
    /// Variance Components", §3.3–3.4), truncated at 0.
    ///
    /// Why this method: the component is a difference of mean squares, so Satterthwaite's χ²
    /// interval (scaled by the estimate) collapses as the estimate approaches 0 and excludes it
    /// when ν → 0; the bootstrap of a few seeds cannot see past their spread. The MLS bounds
    /// are θ̂ ∓ √V with V built from exact χ² and F quantiles of each mean square, so they are
    /// defined at and near 0, always contain θ̂ when θ̂ ≥ 0, are exact for one mean square, and
    /// the lower bound of a difference of two is above 0 exactly when the F test of "component
    /// = 0" rejects at one-sided level (1 − confidence)/2. Under the normal crossed model they
    /// cover 93–97% at 5–25 seeds (`tests/small_seeds.rs`, `examples/coverage`).
    ///
    /// `(NaN, NaN)` when a mean square or its degrees of freedom is not defined (one seed).
    /// Time: O(|P| · |N| + |P|²) quantiles.
    pub fn interval(&self, confidence: f64) -> (f64, f64) {
        let terms = || self.positive.iter().chain(&self.negative);
        if terms().any(|(c, m)| !(c.is_finite() && m.value.is_finite() && m.df > 0.0)) {
            return (f64::NAN, f64::NAN);
        }
        let a = (1.0 - confidence) / 2.0;
        let g = |n: f64| 1.0 - 1.0 / upper_f(a, n, f64::INFINITY);
        let h = |n: f64| 1.0 / upper_f(1.0 - a, n, f64::INFINITY) - 1.0;
        let square = |x: f64| x * x;
        let (mut low, mut high) = (0.0, 0.0);
        for &(c, m) in &self.positive {
            low += square(g(m.df) * c * m.value);
            high += square(h(m.df) * c * m.value);
        }
        for &(c, m) in &self.negative {
            low += square(h(m.df) * c * m.value);
            high += square(g(m.df) * c * m.value);
        }
        for &(cq, q) in &self.positive {
            for &(cr, r) in &self.negative {
                let (f_low, f_high) = (upper_f(a, q.df, r.df), upper_f(1.0 - a, q.df, r.df));
                let g_qr = (square(f_low - 1.0) - square(g(q.df) * f_low) - square(h(r.df))) / f_low;
                let h_qr = (square(1.0 - f_high) - square(h(q.df) * f_high) - square(g(r.df))) / f_high;
                low += g_qr * cq * cr * q.value * r.value;
                high += h_qr * cq * cr * q.value * r.value;
            }
        }
        let p = self.positive.len();
        for (i, &(cq, q)) in self.positive.iter().enumerate() {
            for &(ct, t) in &self.positive[i + 1..] {
                let pooled =
                    square(1.0 - 1.0 / upper_f(a, q.df + t.df, f64::INFINITY)) * square(q.df + t.df) / (q.df * t.df);
                let g_qt = (pooled - square(g(q.df)) * q.df / t.df - square(g(t.df)) * t.df / q.df) / (p - 1) as f64;
                low += g_qt * cq * ct * q.value * t.value;
            }
        }
        let estimate = self.estimate();
        (
            (estimate - low.max(0.0).sqrt()).max(0.0),
            (estimate + high.max(0.0).sqrt()).max(0.0),
        )
    }
}

/// The five components of `y[s][r][e]` as combinations of mean squares, in the order of
/// [`Components::named`] (`None` where a component is not identified: run and residual with one
/// run per seed). `units` resampled units (clusters) when fewer than the examples: the
/// example-level mean squares then get degrees of freedom that count clusters, not examples (an
/// approximation that errs wide: examples of a cluster are not independent).
pub fn combinations(y: &[Vec<Vec<f64>>], units: Option<usize>) -> [Option<Combination>; 5] {
    let (r, n, s) = (y[0].len() as f64, y[0][0].len() as f64, y.len() as f64);
    let u = units.map_or(n, |u| (u as f64).min(n));
    let [seed, run, example, interaction, residual] = mean_squares(y);
    let ms = |value: f64, df: f64| MeanSquare { value, df };
    let seed = ms(seed, s - 1.0);
    let run = ms(run, s * (r - 1.0));
    let example = ms(example, u - 1.0);
    let interaction = ms(interaction, (s - 1.0) * (u - 1.0));
    let residual = ms(residual, s * (r - 1.0) * (u - 1.0));
    let of =
        |positive: Vec<(f64, MeanSquare)>, negative: Vec<(f64, MeanSquare)>| Some(Combination { positive, negative });
    if r < 2.0 {
        return [
            of(vec![(1.0 / n, seed)], vec![(1.0 / n, interaction)]),
            None,
            of(vec![(1.0 / s, example)], vec![(1.0 / s, interaction)]),
            of(vec![(1.0, interaction)], vec![]),
            None,
        ];
    }
    let k = 1.0 / (r * n);
    [
        of(vec![(k, seed), (k, residual)], vec![(k, interaction), (k, run)]),
        of(vec![(1.0 / n, run)], vec![(1.0 / n, residual)]),
        of(vec![(1.0 / (s * r), example)], vec![(1.0 / (s * r), interaction)]),
        of(vec![(1.0 / r, interaction)], vec![(1.0 / r, residual)]),
        of(vec![(1.0, residual)], vec![]),
    ]
}

/// The MLS intervals ([`Combination::interval`]) of the five components, in the order of
/// [`Components::named`]; `(NaN, NaN)` where a component is not identified.
pub fn component_intervals(y: &[Vec<Vec<f64>>], units: Option<usize>, confidence: f64) -> [(f64, f64); 5] {
    combinations(y, units).map(|c| c.map_or((f64::NAN, f64::NAN), |c| c.interval(confidence)))
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

    fn one(c: f64, value: f64, df: f64) -> (f64, MeanSquare) {
        (c, MeanSquare { value, df })
    }

    #[test]
    fn one_mean_square_gets_the_exact_chi_square_interval() {
        // One term: [df·MS/χ²_df(0.975), df·MS/χ²_df(0.025)] (χ²_4: 11.1433, 0.4844).
        let c = Combination {
            positive: vec![one(1.0, 2.0, 4.0)],
            negative: vec![],
        };
        let (lo, hi) = c.interval(0.95);
        assert!(
            (lo - 8.0 / 11.143_286_781).abs() < 1e-6 && (hi - 8.0 / 0.484_418_557).abs() < 1e-5,
            "{lo} {hi}"
        );
    }

    /// For a difference of two mean squares the MLS lower bound is positive exactly when the F
    /// test of MS₁/MS₂ rejects at one-sided level α (Burdick & Graybill 1992, §3.4).
    #[test]
    fn the_lower_bound_of_a_difference_leaves_zero_with_the_f_test() {
        let f = upper_f(0.025, 4.0, 396.0);
        for ratio in [0.5, 0.99 * f, 1.01 * f, 3.0 * f] {
            let c = Combination {
                positive: vec![one(0.01, ratio, 4.0)],
                negative: vec![one(0.01, 1.0, 396.0)],
            };
            let (lo, hi) = c.interval(0.95);
            assert_eq!(lo > 0.0, ratio > f, "ratio {ratio}, F {f}: [{lo}, {hi}]");
            assert!(
                lo <= c.estimate().max(0.0) && c.estimate() <= hi,
                "{lo} {} {hi}",
                c.estimate()
            );
        }
    }

    /// Reference values of Ting et al.'s interval, computed from its published formulas in Python
    /// with scipy's quantiles (an independent implementation), for σ² = (MS₁ − MS₂)/4 with
    /// MS₁ = 5 (df 9), MS₂ = 1 (df 900), and for a four-term combination.
    #[test]
    fn the_difference_interval_matches_a_reference_computation() {
        let c = Combination {
            positive: vec![one(0.25, 5.0, 9.0)],
            negative: vec![one(0.25, 1.0, 900.0)],
        };
        let (lo, hi) = c.interval(0.95);
        assert!((c.estimate() - 1.0).abs() < 1e-12);
        assert!(
            (lo - 0.340_348_677).abs() < 1e-6 && (hi - 3.915_407_234).abs() < 1e-5,
            "{lo} {hi}"
        );
        // Two terms on each side (the seed component with several runs): every cross term.
        let c = Combination {
            positive: vec![one(0.1, 20.0, 4.0), one(0.1, 1.0, 800.0)],
            negative: vec![one(0.1, 2.0, 400.0), one(0.1, 1.5, 10.0)],
        };
        let (lo, hi) = c.interval(0.95);
        assert!(
            (lo - 0.441_504_661).abs() < 1e-6 && (hi - 16.249_865_149).abs() < 1e-5,
            "{lo} {hi}"
        );
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
