//! `mb_stats._native`: the analysis crates behind the `mb_stats` Python package.
//!
//! The Python half (`mb_stats/__init__.py`) turns any table into an Arrow C stream and calls
//! these functions with a dict of settings; each setting is checked here by the command line's
//! own parser, so a bad value raises `ValueError` with the CLI's words, and every report comes
//! back as the long table the CLI writes as CSV (same columns, same numbers). Computations run
//! on a worker thread with the GIL released, while the calling thread watches for Ctrl-C.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use polars::prelude::{Column, CompatLevel, DataFrame, Series};
use polars_arrow::array::{Array, StructArray};
use polars_arrow::datatypes::{ArrowDataType, Field, Metadata};
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader, export_iterator};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyCapsule, PyDict, PyList};

use mb_stats_analysis::analysis::{self, CurveOptions, Options, PowerOptions, SeedsOptions, values};
use mb_stats_analysis::export::table::{Table, Value};
use mb_stats_analysis::export::{self, Tabular};
use mb_stats_analysis::import::lm_eval;
use mb_stats_analysis::results::filter::{Filter, Key};
use mb_stats_analysis::results::{ResultsTable, parquet};
use mb_stats_core::design::Pairing;
use mb_stats_core::interrupt;
use mb_stats_files::error::Error;

/// The Arrow C stream capsule's name (the Arrow PyCapsule interface).
const STREAM: &std::ffi::CStr = c"arrow_array_stream";

/// A results table checked against schema v1, held in Rust between calls.
#[pyclass(frozen, module = "mb_stats._native")]
struct Results {
    table: ResultsTable,
}

#[pymethods]
impl Results {
    fn __len__(&self) -> usize {
        self.table.len()
    }

    /// The footer metadata (`mb_stats.schema`, the experiment, ...).
    #[getter]
    fn metadata(&self) -> Vec<(String, String)> {
        self.table.metadata.clone()
    }

    /// The table as an Arrow C stream (pyarrow, polars and pandas read it without a copy).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let mut frame = parquet::to_frame(&self.table).map_err(error)?;
        frame.rechunk_mut();
        let arrays: Vec<Box<dyn Array>> = frame
            .columns()
            .iter()
            .map(|c| c.as_materialized_series().to_arrow(0, CompatLevel::oldest()))
            .collect();
        let fields: Vec<Field> = frame
            .columns()
            .iter()
            .zip(&arrays)
            .map(|(c, a)| Field::new(c.name().clone(), a.dtype().clone(), true))
            .collect();
        let dtype = ArrowDataType::Struct(fields);
        let metadata: Metadata = self
            .table
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect();
        let field = Field::new("".into(), dtype.clone(), false).with_metadata(metadata);
        let batch: Box<dyn Array> = Box::new(StructArray::new(dtype, frame.height(), arrays, None));
        let stream = export_iterator(Box::new(std::iter::once(Ok(batch))), field);
        PyCapsule::new_with_value(py, stream, STREAM)
    }
}

/// Reads and checks a results table from a Parquet file (the CLI's reader and messages).
#[pyfunction]
fn read_parquet(py: Python<'_>, path: PathBuf) -> PyResult<Results> {
    let table = compute(py, move || parquet::read(&path))?;
    Ok(Results { table })
}

/// Imports lm-evaluation-harness samples (`mb-stats import lm-eval`): the table and the text the
/// CLI prints about its checks. `settings` holds `metric`, `group`, `seed_pattern`, `seeds` (a
/// dict model → seed) and `force`.
#[pyfunction]
fn import_lm_eval(py: Python<'_>, paths: Vec<PathBuf>, settings: &Bound<'_, PyDict>) -> PyResult<(Results, String)> {
    let text = |name: &str| -> PyResult<Option<String>> {
        match settings.get_item(name)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let pattern = text("seed_pattern")?.unwrap_or_else(|| lm_eval::SEED_PATTERN.to_string());
    let seeds: Vec<(String, i64)> = match settings.get_item("seeds")? {
        Some(v) if !v.is_none() => v
            .extract::<std::collections::BTreeMap<String, i64>>()?
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let options = lm_eval::Options {
        metric: text("metric")?,
        group: text("group")?,
        seed_pattern: lm_eval::seed_pattern(&pattern).map_err(error)?,
        seeds,
        force: flag(settings, "force")?,
    };
    let (table, summary) = compute(py, move || {
        let dir = tempfile::tempdir().map_err(|e| Error::Output(format!("a temporary folder: {e}")))?;
        let path = dir.path().join("lm-eval.parquet");
        let summary = lm_eval::import(&paths, &options, &path)?;
        Ok((parquet::read(&path)?, summary.describe("a DataFrame", str::to_string)))
    })?;
    Ok((Results { table }, summary))
}

/// Takes a table from an Arrow C stream capsule and checks it against schema v1; messages start
/// with `source` (the argument's name).
#[pyfunction]
fn from_arrow(py: Python<'_>, stream: &Bound<'_, PyCapsule>, source: &str) -> PyResult<Results> {
    let pointer = stream.pointer_checked(Some(STREAM))?.as_ptr() as *mut ArrowArrayStream;
    // SAFETY: a capsule named `arrow_array_stream` holds an ArrowArrayStream; the interface lets
    // a consumer move it out and leave a released one behind, which the producer then frees.
    let stream = unsafe { std::ptr::replace(pointer, ArrowArrayStream::empty()) };
    let source = source.to_string();
    let table = compute(py, move || {
        let (frame, metadata) = read_stream(stream).map_err(|m| Error::Input(format!("{source}: {m}")))?;
        parquet::from_data_frame(frame, &source, metadata)
    })?;
    Ok(Results { table })
}

/// The batches of an Arrow C stream as one data frame (columns imported without copying), and
/// the schema's metadata.
fn read_stream(stream: ArrowArrayStream) -> Result<(DataFrame, Vec<(String, String)>), String> {
    let text = |e: polars::prelude::PolarsError| e.to_string().lines().next().unwrap_or_default().to_string();
    // SAFETY: the stream came from a producer of the Arrow C stream interface.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream)) }.map_err(text)?;
    let field = reader.field().clone();
    let metadata = field
        .metadata
        .iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ArrowDataType::Struct(fields) = &field.dtype else {
        return Err("expected a table (an Arrow stream of record batches)".into());
    };
    for f in fields {
        if wanted(f) == Some(false) {
            return Err(format!(
                "column {} has Arrow type {:?}; expected numbers or text",
                f.name, f.dtype
            ));
        }
    }
    let mut frame: Option<DataFrame> = None;
    // SAFETY: as above.
    while let Some(batch) = unsafe { reader.next() } {
        let batch = batch.map_err(text)?;
        let batch = batch
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or("expected record batches")?;
        let columns = fields
            .iter()
            .zip(batch.values())
            .filter(|(f, _)| wanted(f).is_some())
            .map(|(f, values)| {
                Series::from_arrow(f.name.clone(), values.clone())
                    .map(Column::from)
                    .map_err(|e| format!("column {}: {}", f.name, text(e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let part = DataFrame::new(batch.len(), columns).map_err(text)?;
        match &mut frame {
            Some(all) => {
                all.vstack_mut_owned(part).map_err(text)?;
            }
            None => frame = Some(part),
        }
    }
    let frame = match frame {
        Some(frame) => frame,
        None => {
            let columns = fields
                .iter()
                .filter(|f| wanted(f).is_some())
                .map(|f| {
                    let empty = polars_arrow::array::new_empty_array(f.dtype.clone());
                    Series::from_arrow(f.name.clone(), empty).map(Column::from)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(text)?;
            DataFrame::new(0, columns).map_err(text)?
        }
    };
    Ok((frame, metadata))
}

/// Whether a column is read: `Some(true)` for a schema v1 column or a numeric extra column of a
/// type the reader takes, `Some(false)` for a schema v1 column of a type no check could accept,
/// `None` for an extra column the analyses ignore (as the Parquet reader ignores it).
fn wanted(field: &Field) -> Option<bool> {
    use ArrowDataType as T;
    let numeric = matches!(
        field.dtype,
        T::Int8
            | T::Int16
            | T::Int32
            | T::Int64
            | T::UInt8
            | T::UInt16
            | T::UInt32
            | T::UInt64
            | T::Float32
            | T::Float64
    );
    let text_like = matches!(
        field.dtype,
        T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Binary | T::LargeBinary | T::BinaryView | T::Boolean | T::Null
    );
    let name = field.name.strip_prefix('\u{feff}').unwrap_or(&field.name);
    match mb_stats_analysis::results::COLUMNS.contains(&name) {
        true => Some(numeric || text_like),
        false => numeric.then_some(true),
    }
}

/// Multi-Bootstrap summaries (`mb-stats bootstrap`), and the replicates when `samples`.
#[pyfunction]
fn bootstrap<'py>(
    py: Python<'py>,
    results: &Results,
    settings: &Bound<'py, PyDict>,
    samples: bool,
) -> PyResult<(Bound<'py, PyAny>, String, Option<Bound<'py, PyAny>>)> {
    let options = Options {
        threshold_abs: setting(settings, "threshold_abs", values::finite)?,
        threshold_rel: setting(settings, "threshold_rel", values::finite)?,
        ..analysis_options(settings)?
    };
    let table = &results.table;
    let report = compute(py, || analysis::bootstrap(table, &options))?;
    let replicates = samples
        .then(|| replicate_table(&report))
        .map(|t| columns(py, &t))
        .transpose()?;
    Ok((columns(py, &report.table())?, export::terminal(&report), replicates))
}

/// Each seed's conclusion beside the procedure's (`mb-stats seeds`).
#[pyfunction]
fn seeds<'py>(
    py: Python<'py>,
    results: &Results,
    settings: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let options = SeedsOptions {
        analysis: analysis_options(settings)?,
        alpha: setting(settings, "alpha", values::probability)?.unwrap_or(0.05),
        permutations: setting(settings, "permutations", values::positive)?.unwrap_or(1000),
    };
    let table = &results.table;
    finish(py, compute(py, || analysis::seeds(table, &options))?)
}

/// Learning curves over pretraining steps (`mb-stats curve`).
#[pyfunction]
fn curve<'py>(
    py: Python<'py>,
    results: &Results,
    settings: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let options = CurveOptions {
        analysis: analysis_options(settings)?,
        tolerance: setting(settings, "tolerance", values::non_negative)?.unwrap_or(0.01),
    };
    let table = &results.table;
    finish(py, compute(py, || analysis::curve(table, &options))?)
}

/// Variance components (`mb-stats variance`).
#[pyfunction]
fn variance<'py>(
    py: Python<'py>,
    results: &Results,
    settings: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let options = analysis_options(settings)?;
    let table = &results.table;
    finish(py, compute(py, || analysis::variance(table, &options))?)
}

/// Power to detect an effect by study size (`mb-stats power`).
#[pyfunction]
fn power<'py>(
    py: Python<'py>,
    results: &Results,
    settings: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let effect = setting(settings, "effect", values::finite)?
        .ok_or_else(|| PyValueError::new_err("effect: required (the effect to detect, in metric units)"))?;
    let analysis = analysis_options(settings)?;
    let alpha = setting(settings, "alpha", values::probability)?.unwrap_or(0.05);
    let seeds = list_setting(settings, "seeds", values::positive)?.unwrap_or_else(|| vec![2, 5, 10, 25]);
    let examples = list_setting(settings, "examples", values::positive)?.unwrap_or_default();
    let simulations = setting(settings, "simulations", values::positive)?.unwrap_or(200);
    let table = &results.table;
    let report = compute(py, || {
        let examples = match examples.is_empty() {
            true => vec![analysis::count_units(table, analysis.ignore_clusters)?],
            false => examples,
        };
        let options = PowerOptions {
            analysis,
            effect,
            alpha,
            seeds,
            examples,
            simulations,
        };
        analysis::power(table, &options)
    })?;
    finish(py, report)
}

/// The options every analysis shares, from the settings (the CLI's defaults where absent).
fn analysis_options(settings: &Bound<'_, PyDict>) -> PyResult<Options> {
    let defaults = Options::default();
    let base = setting(settings, "base", Filter::parse)?;
    let treatment = setting(settings, "treatment", Filter::parse)?;
    let comparison = match (base, treatment) {
        (Some(b), Some(t)) => Some((b, t)),
        (None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "base and treatment: give both (a comparison) or neither",
            ));
        }
    };
    let paired = flag(settings, "paired")?;
    if paired && comparison.is_none() {
        return Err(PyValueError::new_err(
            "paired=True needs a comparison (base and treatment)",
        ));
    }
    let by = list_setting(settings, "by", Key::cell)?.unwrap_or_default();
    Ok(Options {
        metric: setting(settings, "metric", str::parse)?.unwrap_or(defaults.metric),
        comparison,
        pairing: if paired { Pairing::Paired } else { Pairing::Unpaired },
        sampling: setting(settings, "sample", str::parse)?.unwrap_or(defaults.sampling),
        nboot: setting(settings, "nboot", str::parse)?.unwrap_or(defaults.nboot),
        confidence: setting(settings, "confidence", values::probability)?.unwrap_or(defaults.confidence),
        interval: setting(settings, "interval", str::parse)?.unwrap_or(defaults.interval),
        alternative: setting(settings, "alternative", str::parse)?.unwrap_or(defaults.alternative),
        by,
        ignore_clusters: flag(settings, "ignore_clusters")?,
        rng_seed: setting(settings, "rng_seed", values::rng_seed)?.unwrap_or(defaults.rng_seed),
        threshold_abs: None,
        threshold_rel: None,
    })
}

/// Setting `name` parsed from its text by the command line's parser; `None` when absent or None.
/// A refused value reads `name=value: what was expected`.
fn setting<T>(
    settings: &Bound<'_, PyDict>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> PyResult<Option<T>> {
    let Some(value) = settings.get_item(name)?.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    parsed(&value, name, &parse).map(Some)
}

/// A list setting (one value or a list), each element parsed as by [`setting`].
fn list_setting<T>(
    settings: &Bound<'_, PyDict>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> PyResult<Option<Vec<T>>> {
    let Some(value) = settings.get_item(name)?.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    match value.cast::<PyList>() {
        Ok(list) => list
            .iter()
            .map(|v| parsed(&v, name, &parse))
            .collect::<PyResult<_>>()
            .map(Some),
        Err(_) => Ok(Some(vec![parsed(&value, name, &parse)?])),
    }
}

fn parsed<T>(value: &Bound<'_, PyAny>, name: &str, parse: &impl Fn(&str) -> Result<T, String>) -> PyResult<T> {
    let text = value.str()?.to_string();
    parse(&text)
        .map_err(|m| PyValueError::new_err(format!("{name}={}: {m}", value.repr().map_or(text, |r| r.to_string()))))
}

/// A True/False setting (absent = False).
fn flag(settings: &Bound<'_, PyDict>, name: &str) -> PyResult<bool> {
    match settings.get_item(name)? {
        None => Ok(false),
        Some(v) if v.is_instance_of::<PyBool>() => v.extract(),
        Some(v) => Err(PyValueError::new_err(format!(
            "{name}={}: expected True or False",
            v.repr()?
        ))),
    }
}

/// Runs `work` on a worker thread with the GIL released; Ctrl-C stops it (through
/// [`interrupt`]) and raises `KeyboardInterrupt`. A panic becomes `RuntimeError`, never a crash.
fn compute<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    interrupt::clear();
    std::thread::scope(|scope| {
        let (done, mut finished) = mpsc::channel();
        scope.spawn(move || {
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
        });
        loop {
            // The receiver travels into the GIL-free closure and back (it may not be shared).
            let (waited, receiver) = py.detach(move || (finished.recv_timeout(Duration::from_millis(50)), finished));
            finished = receiver;
            match waited {
                Ok(outcome) => {
                    if interrupt::requested() {
                        // Another call was interrupted while this one ran: its numbers may be cut short.
                        py.check_signals()?;
                        return Err(PyRuntimeError::new_err("interrupted by Ctrl-C in another call"));
                    }
                    return match outcome {
                        Ok(result) => result.map_err(error),
                        Err(_) => Err(PyRuntimeError::new_err(
                            "internal error in mb_stats (please report it with the call that caused it)",
                        )),
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(signal) = py.check_signals() {
                        interrupt::request();
                        let _ = py.detach(move || finished.recv());
                        return Err(signal);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err(
                        "internal error in mb_stats: the computation stopped",
                    ));
                }
            }
        }
    })
}

/// A library error as a Python exception: bad input is `ValueError` with the CLI's message
/// (settings named as the keyword arguments are).
fn error(e: Error) -> PyErr {
    match e.spelled(str::to_string) {
        Error::Output(m) => PyRuntimeError::new_err(m),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A report's long table and its Markdown.
fn finish<'py, R: Tabular>(py: Python<'py>, report: R) -> PyResult<(Bound<'py, PyAny>, String)> {
    Ok((columns(py, &report.table())?, export::terminal(&report)))
}

/// A long table as `[(name, kind, values)]`, one entry per column: `kind` is `float` (empty =
/// NaN), `int` (empty = None) or `text` (empty = None). The values are those the CLI's CSV prints
/// at full precision, unrounded.
fn columns<'py>(py: Python<'py>, table: &Table) -> PyResult<Bound<'py, PyAny>> {
    let out = PyList::empty(py);
    for (j, name) in table.columns.iter().enumerate() {
        let cells: Vec<&Value> = table.rows.iter().map(|row| &row[j]).collect();
        let all = |f: fn(&Value) -> bool| cells.iter().all(|v| f(v) || matches!(v, Value::Empty));
        let column: Bound<'py, PyAny> = if all(|v| matches!(v, Value::Count(_) | Value::Integer(_))) {
            let ints: Vec<Option<i64>> = cells
                .iter()
                .map(|v| match v {
                    Value::Count(n) => Some(*n as i64),
                    Value::Integer(n) => Some(*n),
                    _ => None,
                })
                .collect();
            ("int", ints).into_pyobject(py)?.into_any()
        } else if all(|v| matches!(v, Value::Number(_) | Value::Count(_) | Value::Integer(_))) {
            let floats: Vec<f64> = cells
                .iter()
                .map(|v| match v {
                    Value::Number(x) => *x,
                    Value::Count(n) => *n as f64,
                    Value::Integer(n) => *n as f64,
                    _ => f64::NAN,
                })
                .collect();
            ("float", floats).into_pyobject(py)?.into_any()
        } else {
            let texts: Vec<Option<String>> = cells
                .iter()
                .map(|v| (!matches!(v, Value::Empty)).then(|| v.plain()))
                .collect();
            ("text", texts).into_pyobject(py)?.into_any()
        };
        out.append((name, column))?;
    }
    Ok(out.into_any())
}

/// The replicates of a bootstrap report, as `--samples` writes them.
fn replicate_table(report: &analysis::Report) -> Table {
    let mut rows = Vec::new();
    for r in &report.replicates {
        let treatment = r.replicates.treatment.as_ref();
        for (i, &base) in r.replicates.base.iter().enumerate() {
            rows.push(vec![
                Value::text(&r.cell),
                Value::text(&r.group),
                Value::count(i),
                Value::Number(base),
                Value::number(treatment.map(|t| t[i])),
            ]);
        }
    }
    Table {
        columns: vec!["cell", "group", "replicate", "base", "treatment"],
        rows,
        document: Vec::new(),
        sections: Vec::new(),
        footer: Vec::new(),
    }
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Results>()?;
    // The one default number of replicates, shared with the command line and experiment files.
    m.add(
        "DEFAULT_NBOOT",
        mb_stats_analysis::analysis::ReplicateCount::DEFAULT.get(),
    )?;
    m.add_function(wrap_pyfunction!(read_parquet, m)?)?;
    m.add_function(wrap_pyfunction!(from_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(import_lm_eval, m)?)?;
    m.add_function(wrap_pyfunction!(bootstrap, m)?)?;
    m.add_function(wrap_pyfunction!(seeds, m)?)?;
    m.add_function(wrap_pyfunction!(curve, m)?)?;
    m.add_function(wrap_pyfunction!(variance, m)?)?;
    m.add_function(wrap_pyfunction!(power, m)?)?;
    Ok(())
}
