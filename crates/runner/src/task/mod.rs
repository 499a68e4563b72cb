//! Tasks: what is measured on one checkpoint. The linear probe trains an L2 logistic regression
//! ([`probe`]) on frozen pooled features and predicts the evaluation examples. (Zero-shot cloze
//! and minimal pairs, which read the masked-LM head, are the next kinds.)

pub mod probe;

use ndarray::{Array2, ArrayView2};

use mb_stats_files::error::{Result, input};
use probe::{FitReport, LogisticProbe, ProbeConfig};

/// Predictions of one probe on the evaluation examples.
pub struct ProbeOutcome {
    /// Predicted class of each evaluation example.
    pub predictions: Vec<usize>,
    /// Class probabilities, `examples × classes`.
    pub probabilities: Array2<f64>,
    /// How the optimiser ended.
    pub fit: FitReport,
}

/// Train on (`train`, `classes`) and predict `eval`.
pub fn linear_probe(
    train: ArrayView2<f32>,
    classes: &[usize],
    eval: ArrayView2<f32>,
    n_classes: usize,
    config: &ProbeConfig,
) -> Result<ProbeOutcome> {
    let (probe, fit) = LogisticProbe::fit(train, classes, n_classes, config).map_err(input)?;
    Ok(ProbeOutcome {
        predictions: probe.predict(eval),
        probabilities: probe.predict_proba(eval),
        fit,
    })
}
