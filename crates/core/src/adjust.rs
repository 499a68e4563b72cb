//! Multiple-comparison adjustments of p-values across the cells of `--by`.

/// Holm's step-down adjustment (controls the family-wise error rate under any dependence).
/// Time: O(m log m).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in ascending(p).iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini–Hochberg step-up adjustment (controls the false discovery rate for independent or
/// positively dependent tests). Time: O(m log m).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 1.0;
    for (rank, &i) in ascending(p).iter().enumerate().rev() {
        // m/(rank + 1) ≥ 1 first, so the product never rounds below p (m·p/m can, by an ulp).
        running = running.min(m as f64 / (rank + 1) as f64 * p[i]);
        adjusted[i] = running;
    }
    adjusted
}

fn ascending(p: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holm by definition: the running maximum of (m − j + 1) p_(j) over ranks up to i.
    fn holm_by_definition(p: &[f64]) -> Vec<f64> {
        let m = p.len();
        let rank = |i: usize| {
            p.iter()
                .enumerate()
                .filter(|&(j, &q)| q < p[i] || (q == p[i] && j < i))
                .count()
        };
        (0..m)
            .map(|i| {
                (0..m)
                    .filter(|&j| rank(j) <= rank(i))
                    .map(|j| ((m - rank(j)) as f64 * p[j]).min(1.0))
                    .fold(0.0, f64::max)
            })
            .collect()
    }

    /// BH by definition: the minimum of m p_(j) / j over ranks from i on.
    fn bh_by_definition(p: &[f64]) -> Vec<f64> {
        let m = p.len();
        let rank = |i: usize| {
            p.iter()
                .enumerate()
                .filter(|&(j, &q)| q < p[i] || (q == p[i] && j < i))
                .count()
        };
        (0..m)
            .map(|i| {
                (0..m)
                    .filter(|&j| rank(j) >= rank(i))
                    .map(|j| (m as f64 * p[j] / (rank(j) + 1) as f64).min(1.0))
                    .fold(1.0, f64::min)
            })
            .collect()
    }

    #[test]
    fn hand_computed_example() {
        let p = [0.01, 0.04, 0.03, 0.20];
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(&holm(&p), &[0.04, 0.09, 0.09, 0.20]), "{:?}", holm(&p));
        assert!(close(
            &benjamini_hochberg(&p),
            &[0.04, 0.16 / 3.0, 0.06_f64.min(0.16 / 3.0), 0.20]
        ));
    }

    #[test]
    fn matches_the_definitions_on_many_vectors() {
        let mut x = 0x2545F4914F6CDD1Du64;
        for m in 1..12 {
            for _ in 0..50 {
                let p: Vec<f64> = (0..m)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Also values that lose an ulp in m·p/m.
                        if x.is_multiple_of(7) {
                            0.9838923060748941
                        } else {
                            ((x % 1000) as f64 / 1000.0).max(0.001)
                        }
                    })
                    .collect();
                let (h, b) = (holm(&p), benjamini_hochberg(&p));
                for i in 0..m {
                    assert!((h[i] - holm_by_definition(&p)[i]).abs() < 1e-12);
                    assert!((b[i] - bh_by_definition(&p)[i]).abs() < 1e-12);
                    assert!(p[i] <= b[i] && b[i] <= h[i] + 1e-15);
                }
            }
        }
    }
}
