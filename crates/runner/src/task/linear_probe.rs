//! `kind = "linear-probe"`: an L2 logistic regression ([`super::probe`]) per (layer, run),
//! trained on frozen pooled features of the run's own training subset and evaluated on the
//! evaluation set. One forward pass per checkpoint serves every pending unit.

use std::path::Path;

use ndarray::{Array2, Axis};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use super::labelled_data::{LabelledData, LabelledDataSpec};
use super::probe::{LogisticProbe, ProbeConfig};
use super::{Saved, Task, TaskSource, Unit, UnitRows, check_runs};
use crate::progress::Board;
use mb_stats_analysis::results::{Numbers, footer};
use mb_stats_bert::{Bert, Features, Layers, Pooling};
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

/// `[task]` of a linear probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    /// Layers: `"last"` (default), `"all"`, or a list (0 = embeddings output).
    #[serde(default = "default_layers")]
    pub layers: Layers,
    /// `cls` or `mean` (a probe needs one vector per text).
    #[serde(default = "default_pooling")]
    pub pooling: Pooling,
    /// Probe runs per checkpoint and layer, each on its own train subset and seed.
    #[serde(default = "default_runs")]
    pub runs: usize,
    /// L2 penalty of the logistic regression (scikit-learn's `1 / C`).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Iteration limit of the probe's optimiser.
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
}

fn default_layers() -> Layers {
    Layers::Last
}
fn default_pooling() -> Pooling {
    Pooling::Cls
}
fn default_runs() -> usize {
    1
}
fn default_l2() -> f64 {
    1.0
}
fn default_max_iter() -> usize {
    1000
}

impl ProbeSpec {
    /// The probe's `[task]` and `[data]` of `source`, read and checked.
    pub fn read(source: &TaskSource) -> Result<(ProbeSpec, LabelledDataSpec)> {
        let (task, data): (ProbeSpec, LabelledDataSpec) = source.sections()?;
        data.check(source)?;
        if task.pooling == Pooling::None {
            return Err(source.bad("task.pooling", "expected \"cls\" or \"mean\", got \"none\""));
        }
        check_runs(source, task.runs)?;
        if !(task.l2.is_finite() && task.l2 > 0.0) {
            return Err(source.bad("task.l2", "expected a positive number"));
        }
        if task.max_iter == 0 {
            return Err(source.bad("task.max_iter", "expected at least 1 (0 leaves the probe untrained)"));
        }
        Ok((task, data))
    }
}

/// The linear probe of an experiment, with its labelled data.
pub struct LinearProbe {
    data: LabelledData,
    config: ProbeConfig,
    layers: Layers,
    pooling: Pooling,
    runs: usize,
    train_size: Option<usize>,
    batch_tokens: usize,
    /// The experiment file, for messages.
    source: String,
    /// The settings in its run keys.
    settings: Vec<(&'static str, serde_json::Value)>,
}

impl LinearProbe {
    /// The probe of `source`, its training and evaluation data read and checked.
    pub fn new(source: &TaskSource) -> Result<Self> {
        let (task, data) = ProbeSpec::read(source)?;
        // The settings in its run keys, as they have always been recorded.
        let layers = match &task.layers {
            Layers::List(l) => json!(l),
            other => json!(other.to_string()),
        };
        let settings = vec![
            ("data.train_size", json!(data.train_size)),
            ("task.pooling", json!(task.pooling.to_string())),
            ("task.l2", json!(task.l2)),
            ("task.max_iter", json!(task.max_iter)),
            ("task.layers", layers),
            ("task.runs", json!(task.runs)),
        ];
        Ok(LinearProbe {
            data: LabelledData::load(source, &data)?,
            config: ProbeConfig {
                l2: task.l2,
                max_iter: task.max_iter,
                ..ProbeConfig::default()
            },
            layers: task.layers,
            pooling: task.pooling,
            runs: task.runs,
            train_size: data.train_size,
            batch_tokens: source.batch_tokens,
            source: source.path.display().to_string(),
            settings,
        })
    }

    /// The rows of one fitted probe: labels and predictions as the data's label values, and
    /// P(class 1) as the score of a binary task.
    fn rows(&self, predictions: &[usize], probabilities: &Array2<f64>) -> UnitRows {
        let data = &self.data;
        let value = |class: usize| match &data.class_values {
            Some(values) => values[class],
            None => class as i64,
        };
        let correct = predictions
            .iter()
            .zip(&data.eval.classes)
            .filter(|(p, g)| p == g)
            .count();
        UnitRows {
            example: data.eval_ids.clone(),
            label: Numbers::Int(data.eval.classes.iter().map(|&c| Some(value(c))).collect()),
            prediction: Numbers::Int(predictions.iter().map(|&c| Some(value(c))).collect()),
            score: (data.classes.len() == 2).then(|| probabilities.column(1).iter().map(|&p| Some(p)).collect()),
            cluster: None,
            extra: Vec::new(),
            subtask: None,
            metadata: vec![(footer::CLASSES.to_string(), data.classes.join(","))],
            headline: correct as f64 / data.eval.classes.len() as f64,
            saved: Saved::Nothing,
        }
    }
}

impl Task for LinearProbe {
    fn kind(&self) -> &'static str {
        "linear-probe"
    }

    fn data_digest(&self) -> String {
        self.data.digest()
    }

    fn settings(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.settings.clone()
    }

    fn units(&self, n_hidden_states: usize) -> Result<Vec<Unit>> {
        let layers = self
            .layers
            .resolve(n_hidden_states)
            .map_err(|e| input(format!("{}: task.layers: {e}", self.source)))?;
        Ok(layers
            .iter()
            .flat_map(|&layer| (0..self.runs).map(move |run| Unit { layer, run, lr: None }))
            .collect())
    }

    fn evaluate(
        &self,
        bert: &Bert,
        pending: &[Unit],
        name: &str,
        _state: &Path,
        board: &Board,
        finished: &mut dyn FnMut(Unit, UnitRows) -> Result<()>,
    ) -> Result<()> {
        let data = &self.data;
        // Features once for the union of the pending runs' training rows and the evaluation set.
        let subsets: Vec<Vec<usize>> = (0..self.runs).map(|r| data.train_subset(r, self.train_size)).collect();
        let mut train_rows: Vec<usize> = pending.iter().flat_map(|u| subsets[u.run].iter().copied()).collect();
        train_rows.sort_unstable();
        train_rows.dedup();
        let mut inputs: Vec<_> = train_rows.iter().map(|&i| data.train.inputs[i].clone()).collect();
        inputs.extend(data.eval.inputs.iter().cloned());
        let mut needed: Vec<usize> = pending.iter().map(|u| u.layer).collect();
        needed.dedup();
        let counter = board.counter(inputs.len(), "sentences");
        let features = bert.features(&inputs, &needed, self.pooling, self.batch_tokens, &counter.advance())?;
        board.remove(counter);
        let Features::Pooled(per_layer) = features else {
            return Err(input(format!("{}: task.pooling: expected cls or mean", self.source)));
        };
        let n_train = train_rows.len();
        for &unit in pending {
            let Unit { layer, run, .. } = unit;
            let matrix = &per_layer[needed.iter().position(|&l| l == layer).expect("needed layer")];
            let positions: Vec<usize> = subsets[run]
                .iter()
                .map(|row| train_rows.binary_search(row).expect("in the union"))
                .collect();
            let train: Array2<f32> = matrix.select(Axis(0), &positions);
            let classes: Vec<usize> = subsets[run].iter().map(|&i| data.train.classes[i]).collect();
            let eval = matrix.slice(ndarray::s![n_train.., ..]);
            let (probe, _) = LogisticProbe::fit(train.view(), &classes, data.classes.len(), &self.config)
                .map_err(|e| input(format!("{name}: layer {layer}, run {run}: {e}")))?;
            finished(unit, self.rows(&probe.predict(eval), &probe.predict_proba(eval)))?;
        }
        Ok(())
    }

    fn metrics(&self) -> &'static [Metric] {
        super::CLASSIFICATION_METRICS
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.len() {
            0 => "already finished".to_string(),
            n => format!(
                "{n} probes, mean eval accuracy {:.4}",
                headlines.iter().sum::<f64>() / n as f64
            ),
        }
    }
}
