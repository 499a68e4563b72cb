//! Learning curves over pretraining steps from replicates drawn jointly at every step (the same
//! seeds and examples are drawn for every step, so differences between steps are paired).

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use super::interval::{IntervalMethod, SeedLevel};
use super::summary::quantile;

/// A simultaneous band over all steps by the max-|t| method: with se_k the bootstrap standard
/// deviation at step k, the critical value c is the `confidence` quantile of
/// max_k |θ*_kb − θ̂_k| / se_k over replicates b, and the band is θ̂_k ± c·se_k. Steps without
/// bootstrap variation get a band of zero width. Returns c and the band.
///
/// Under a non-percentile `method` the band is calibrated like the pointwise intervals (see
/// [`super::interval`]): se_k becomes √V_C at step k (from `levels[k]`), and c is carried from the
/// normal to Student's t with the fewest degrees of freedom over the steps (the same tail
/// probability), so that few seeds widen the band as they widen each interval.
/// Time: O(steps × nboot + nboot log nboot).
pub fn simultaneous_band(
    estimates: &[f64],
    replicates: &[Vec<f64>],
    confidence: f64,
    method: IntervalMethod,
    levels: &[SeedLevel],
) -> (f64, Vec<(f64, f64)>) {
    let variances: Vec<f64> = replicates
        .iter()
        .map(|r| {
            let m = r.iter().sum::<f64>() / r.len() as f64;
            r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (r.len() as f64 - 1.0).max(1.0)
        })
        .collect();
    let se: Vec<f64> = variances.iter().map(|v| v.sqrt()).collect();
    let nboot = replicates.first().map_or(0, Vec::len);
    let mut maxima: Vec<f64> = (0..nboot)
        .map(|b| {
            (0..estimates.len())
                .filter(|&k| se[k] > 0.0)
                .map(|k| (replicates[k][b] - estimates[k]).abs() / se[k])
                .fold(0.0, f64::max)
        })
        .collect();
    maxima.sort_by(f64::total_cmp);
    let mut c = if maxima.is_empty() {
        0.0
    } else {
        quantile(&maxima, confidence)
    };
    let mut width = se;
    if method != IntervalMethod::Percentile && c > 0.0 {
        let corrected: Vec<(f64, f64)> = variances
            .iter()
            .zip(levels)
            .filter(|(v, _)| **v > 0.0)
            .map(|(v, l)| l.corrected(*v))
            .collect();
        let df = corrected.iter().map(|c| c.1).fold(f64::INFINITY, f64::min).min(1e6);
        if let Ok(t) = StudentsT::new(0.0, 1.0, df) {
            c = t.inverse_cdf(Normal::standard().cdf(c));
        }
        width = variances
            .iter()
            .zip(levels)
            .map(|(v, l)| if *v > 0.0 { l.corrected(*v).0.sqrt() } else { 0.0 })
            .collect();
    }
    let band = estimates
        .iter()
        .zip(&width)
        .map(|(e, s)| (e - c * s, e + c * s))
        .collect();
    (c, band)
}

/// The index of the earliest step from which every later value stays within `tolerance` of the
/// last one.
pub fn earliest_within(values: &[f64], tolerance: f64) -> usize {
    let last = values[values.len() - 1];
    let mut earliest = values.len() - 1;
    for k in (0..values.len()).rev() {
        if (values[k] - last).abs() > tolerance {
            break;
        }
        earliest = k;
    }
    earliest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_step_within_tolerance_of_the_last() {
        assert_eq!(earliest_within(&[0.5, 0.8, 0.89, 0.91, 0.9], 0.02), 2);
        // A late excursion resets the run: 0.95 is out of tolerance, so only the last two count.
        assert_eq!(earliest_within(&[0.9, 0.9, 0.95, 0.9, 0.9], 0.02), 3);
        assert_eq!(earliest_within(&[0.1, 0.9], 0.0), 1);
    }

    #[test]
    fn band_critical_value_is_the_quantile_of_the_studentised_maximum() {
        // Two steps, replicates symmetric around the estimates: |t| values are equal per b.
        let estimates = [0.0, 10.0];
        let replicates = vec![vec![-1.0, 1.0, -2.0, 2.0], vec![9.0, 11.0, 8.0, 12.0]];
        let levels = vec![SeedLevel::default(); 2];
        let (c, band) = simultaneous_band(&estimates, &replicates, 1.0, IntervalMethod::Percentile, &levels);
        let se = (10.0f64 / 3.0).sqrt();
        assert!((c - 2.0 / se).abs() < 1e-12);
        assert!((band[0].1 - 2.0).abs() < 1e-12 && (band[1].0 - 8.0).abs() < 1e-12);
    }
}
