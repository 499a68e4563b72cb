//! `mb-stats embed`: texts in, hidden states of chosen layers out, as Parquet
//! (`example` int64, `layer` int32, `embedding` list<float32>, and `token` int32 without pooling).

use std::path::Path;

use polars::prelude::*;

use crate::dataset::TextTable;
use crate::progress::{Board, Progress, Style};
use mb_stats_analysis::results::footer;
use mb_stats_bert::fetch::{CheckpointSource, fetch};
use mb_stats_bert::{Bert, Features, Layers, Pooling, Runtime};
use mb_stats_files::error::{Error, Result};

/// What to embed and how.
pub struct EmbedRequest<'a> {
    /// Local directory or Hub repo id (`owner/name[@revision]`).
    pub model: &'a str,
    /// The texts.
    pub input: &'a Path,
    /// Column with the texts (tables only; default `text` or `sentence`).
    pub text_column: Option<&'a str>,
    /// Column with the second text of a pair.
    pub pair_column: Option<&'a str>,
    /// Layers to keep (0 = embeddings output); a layer the model lacks is an
    /// [`Error::Named`] of `{layers}`.
    pub layers: Layers,
    /// Pooling of token vectors.
    pub pooling: Pooling,
    /// Device, dtype, truncation and batching (an error opening the device is an
    /// [`Error::Named`] of `{device}`).
    pub runtime: Runtime,
    /// Use only the Hugging Face cache.
    pub offline: bool,
    /// How progress is shown.
    pub progress: Style,
}

/// Run the request and write `output` atomically.
pub fn embed(request: &EmbedRequest, output: &Path) -> Result<()> {
    let table = TextTable::read(request.input)?;
    let inputs = table.inputs(request.text_column, request.pair_column)?;
    let runtime = request.runtime;
    let device = runtime
        .device
        .open()
        .map_err(|e| Error::named(format!("{{device}} {}: {e}", runtime.device)))?;
    let checkpoint = fetch(&CheckpointSource::parse(request.model)?, request.offline)?;
    let started = std::time::Instant::now();
    let bert = Bert::load(
        &checkpoint.dir,
        &device,
        runtime.dtype.dtype(),
        runtime.max_length.get(),
    )?;
    let loaded = started.elapsed().as_secs_f64();
    let layers = request
        .layers
        .resolve(bert.n_hidden_states())
        .map_err(|e| Error::named(format!("{{layers}} {}: {e}", request.layers)))?;
    Board::new(request.progress).println(&format!("{}: loaded in {loaded:.2} s", request.model));
    let progress = Progress::styled(inputs.len(), "sentences", request.progress);
    let features = bert.features(
        &inputs,
        &layers,
        request.pooling,
        runtime.batch_tokens.get(),
        &progress.advance(),
    )?;
    progress.finish();
    let mut frame = features_frame(&features, &layers)?;
    let mut metadata = vec![
        (footer::MODEL.to_string(), request.model.to_string()),
        (footer::POOLING.to_string(), request.pooling.to_string()),
        (
            footer::MAX_LENGTH.to_string(),
            bert.tokenizer().max_length().to_string(),
        ),
        (footer::DTYPE.to_string(), runtime.dtype.to_string()),
    ];
    if let Some(commit) = &checkpoint.commit {
        metadata.push((footer::REVISION.to_string(), commit.clone()));
    }
    mb_stats_analysis::results::parquet::write_frame(&mut frame, metadata, output)
}

fn features_frame(features: &Features, layers: &[usize]) -> Result<DataFrame> {
    let mut example: Vec<i64> = Vec::new();
    let mut layer_column: Vec<i32> = Vec::new();
    let mut token: Vec<i32> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let width;
    match features {
        Features::Pooled(per_layer) => {
            width = per_layer.first().map_or(0, |m| m.ncols());
            let n = per_layer.first().map_or(0, |m| m.nrows());
            for i in 0..n {
                for (matrix, &layer) in per_layer.iter().zip(layers) {
                    example.push(i as i64);
                    layer_column.push(layer as i32);
                    values.extend(matrix.row(i).iter());
                }
            }
        }
        Features::Tokens(per_layer) => {
            width = per_layer.first().and_then(|l| l.first()).map_or(0, |m| m.ncols());
            let n = per_layer.first().map_or(0, Vec::len);
            for i in 0..n {
                for (inputs, &layer) in per_layer.iter().zip(layers) {
                    for (t, row) in inputs[i].rows().into_iter().enumerate() {
                        example.push(i as i64);
                        layer_column.push(layer as i32);
                        token.push(t as i32);
                        values.extend(row.iter());
                    }
                }
            }
        }
    }
    let failed = |e: PolarsError| Error::Output(format!("building the embedding table: {e}"));
    let rows = example.len();
    let embedding = Series::new("embedding".into(), values)
        .reshape_list(&[ReshapeDimension::new(rows as i64), ReshapeDimension::new(width as i64)])
        .map_err(failed)?;
    let mut columns = vec![
        Column::new("example".into(), example),
        Column::new("layer".into(), layer_column),
    ];
    if matches!(features, Features::Tokens(_)) {
        columns.push(Column::new("token".into(), token));
    }
    columns.push(embedding.into());
    DataFrame::new(rows, columns).map_err(failed)
}
