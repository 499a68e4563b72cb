//! `kind = "linear-probe"`: an L2 logistic regression ([`super::probe`]) per (layer, run),
//! trained on frozen pooled features of the run's own training subset and evaluated on the
//! evaluation set. One forward pass per checkpoint serves every pending unit.

use ndarray::{Array2, Axis};

use super::probe::{LogisticProbe, ProbeConfig};
use super::{Task, Unit, UnitRows};
use crate::experiment::config::ExperimentFile;
use crate::experiment::data::LabelledData;
use crate::experiment::key;
use crate::progress::Board;
use mb_stats_analysis::results::{Numbers, footer};
use mb_stats_bert::{Bert, Features, Layers, Pooling};
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

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
    /// The probe of `file`, its training and evaluation data read and checked.
    pub fn new(file: &ExperimentFile, offline: bool) -> Result<Self> {
        let experiment = &file.experiment;
        Ok(LinearProbe {
            data: LabelledData::load(file, offline)?,
            config: ProbeConfig {
                l2: experiment.task.l2,
                max_iter: experiment.task.max_iter,
                ..ProbeConfig::default()
            },
            layers: experiment.task.layers.clone(),
            pooling: experiment.task.pooling,
            runs: experiment.task.runs,
            train_size: experiment.data.train_size,
            batch_tokens: experiment.runtime.batch_tokens,
            source: file.path.display().to_string(),
            settings: key::probe_settings(file),
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
            extra: Vec::new(),
            subtask: None,
            metadata: vec![(footer::CLASSES.to_string(), data.classes.join(","))],
            headline: correct as f64 / data.eval.classes.len() as f64,
            weights: Vec::new(),
        }
    }
}

impl Task for LinearProbe {
    fn kind(&self) -> &'static str {
        "linear-probe"
    }

    fn data_digest(&self) -> String {
        key::data_digest(&self.data)
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
