//! The fast engine agrees with the slow definition on the same draws, to 1e-12, for every
//! metric, design and sampling mode.

mod common;

use common::{Values, designs, slow_side};
use mb_stats_core::engine::Engine;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::{Resampler, Sampling};

fn values_for(metric: Metric) -> Values {
    match metric {
        Metric::MacroF1 | Metric::Accuracy => Values::Multiclass,
        Metric::Pearson | Metric::Spearman => Values::Continuous,
        _ => Values::Binary,
    }
}

#[test]
fn fast_engine_matches_the_definition_on_the_same_draws() {
    let nboot = 40;
    let mut checked = 0;
    for metric in Metric::ALL {
        for (name, design) in designs(values_for(metric)) {
            let engine = Engine::new(&design, metric).unwrap();
            for sampling in [Sampling::Both, Sampling::Seeds, Sampling::Examples] {
                let resampler = Resampler::new(&design, sampling, 11);
                let batch = engine.bootstrap(&resampler, nboot);
                let mut draws = vec![resampler.full()];
                draws.extend((0..nboot as u64).map(|b| resampler.draw(b)));
                for (i, draw) in draws.iter().enumerate() {
                    let fast = engine.evaluate(draw);
                    let slow_base = slow_side(metric, design.base(), &draw.base_seeds, &design, draw);
                    let context = format!("{metric} {name} {sampling:?} draw {i}");
                    assert!(
                        (fast.base - slow_base).abs() <= 1e-12,
                        "{context}: base {} vs {slow_base}",
                        fast.base
                    );
                    if let Some(t) = design.treatment() {
                        let slow_t = slow_side(metric, t, &draw.treatment_seeds, &design, draw);
                        let fast_t = fast.treatment.unwrap();
                        assert!(
                            (fast_t - slow_t).abs() <= 1e-12,
                            "{context}: treatment {fast_t} vs {slow_t}"
                        );
                    }
                    if i > 0 {
                        // The batched path gives the single-draw value of the same replicate.
                        assert!((batch.base[i - 1] - fast.base).abs() <= 1e-12, "{context}: batch base");
                        if let (Some(bt), Some(ft)) = (&batch.treatment, fast.treatment) {
                            assert!((bt[i - 1] - ft).abs() <= 1e-12, "{context}: batch treatment");
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, Metric::ALL.len() * 6 * 3 * (nboot + 1));
}

#[test]
fn draws_respect_pairing_and_sampling_mode() {
    for (name, design) in designs(Values::Binary) {
        let n_units = design.n_units() as u32;
        for sampling in [Sampling::Both, Sampling::Seeds, Sampling::Examples] {
            let resampler = Resampler::new(&design, sampling, 3);
            for b in 0..50 {
                let d = resampler.draw(b);
                assert_eq!(d.units.iter().sum::<u32>(), n_units, "{name}");
                assert_eq!(d.base_seeds.iter().sum::<u32>() as usize, design.base().seeds.len());
                if sampling == Sampling::Seeds {
                    assert!(d.units.iter().all(|&c| c == 1));
                }
                if sampling == Sampling::Examples {
                    assert!(d.base_seeds.iter().chain(&d.treatment_seeds).all(|&c| c == 1));
                }
                if design.pairing() == mb_stats_core::design::Pairing::Paired {
                    assert_eq!(d.base_seeds, d.treatment_seeds, "{name}");
                }
            }
        }
    }
}
