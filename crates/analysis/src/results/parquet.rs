//! Reading and writing the results table as Parquet with polars (footer metadata included).
//!
//! Readers accept any integer or float width and cast; they reject, with one line naming the
//! file and column, missing required columns, nulls in `group`/`seed`/`example`, and values of
//! the wrong kind. Writers are atomic: a temporary file in the target directory, then a rename.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use super::{ExampleIds, Numbers, ResultsTable, SCHEMA_VERSION, Texts, footer};
use mb_stats_files::error::{Error, Result, input};
use mb_stats_files::output::atomic_write_with;

/// Reads a results table and its footer metadata.
pub fn read(path: &Path) -> Result<ResultsTable> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| input(format!("{shown}: cannot open results file: {e}")))?;
    let mut reader = ParquetReader::new(file);
    let not_parquet = |e: PolarsError| input(format!("{shown}: not a readable Parquet file: {}", first_line(&e)));
    let metadata: Vec<(String, String)> = reader
        .get_metadata()
        .map_err(not_parquet)?
        .key_value_metadata()
        .iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    check_schema(&shown.to_string(), &metadata)?;
    // Only the columns the analyses read: schema v1's and numeric extras. Others (timestamps,
    // structs, maps, decimals, half floats) are never decoded, so their types cannot refuse
    // (or crash) a table the analyses can use.
    let schema = reader.schema().map_err(not_parquet)?;
    if let Some((name, field)) = schema
        .iter()
        .find(|(name, field)| super::COLUMNS.contains(&name.as_str()) && !readable(field.dtype()))
    {
        return Err(input(format!(
            "{shown}: column {name} has type {:?}; schema v1 reads integers, floats or text there",
            field.dtype()
        )));
    }
    let read: Vec<String> = schema
        .iter()
        .filter(|(name, field)| super::COLUMNS.contains(&name.as_str()) || read_as_extra(field.dtype()))
        .map(|(name, _)| name.to_string())
        .collect();
    let rows = reader.num_rows().map_err(not_parquet)?;
    if rows == 0 {
        return Err(input(format!("{shown}: no rows; a results table needs at least one")));
    }
    // One column at a time: a table of tens of millions of rows never has all its columns
    // decoded beside the one being built.
    let mut column = |name: &str| -> std::result::Result<DataFrame, String> {
        if !read.iter().any(|r| r == name) {
            return Ok(DataFrame::empty());
        }
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        ParquetReader::new(file)
            .with_columns(Some(vec![name.to_string()]))
            .finish()
            .map_err(|e| format!("not a readable Parquet file: {}", first_line(&e)))
    };
    from_columns(&read, &mut column, metadata).map_err(|m| input(format!("{shown}: {m}")))
}

/// Whether a schema v1 column's type can be read: numbers, text (plain or dictionary-encoded),
/// or all nulls.
fn readable(dtype: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    read_as_extra(dtype)
        || matches!(dtype, A::Utf8 | A::LargeUtf8 | A::Utf8View | A::Null)
        || matches!(dtype, A::Dictionary(_, values, _) if matches!(values.as_ref(), A::Utf8 | A::LargeUtf8 | A::Utf8View))
}

/// Whether a column outside schema v1 is kept as a numeric extra (see [`extra_columns`]).
fn read_as_extra(dtype: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    matches!(
        dtype,
        A::Int8
            | A::Int16
            | A::Int32
            | A::Int64
            | A::UInt8
            | A::UInt16
            | A::UInt32
            | A::UInt64
            | A::Float32
            | A::Float64
    )
}

/// Refuses a table whose footer names another schema version.
fn check_schema(shown: &str, metadata: &[(String, String)]) -> Result<()> {
    match metadata
        .iter()
        .find(|(k, v)| k == footer::SCHEMA && v != SCHEMA_VERSION)
    {
        Some((_, v)) => Err(input(format!(
            "{shown}: {} is '{v}', this version reads schema {SCHEMA_VERSION}",
            footer::SCHEMA
        ))),
        None => Ok(()),
    }
}

/// Converts a data frame read from `source` (a file name, or the argument of a Python call) into
/// a table, with the reader's checks and messages (`source: missing required column(s) …`).
pub fn from_data_frame(mut df: DataFrame, source: &str, metadata: Vec<(String, String)>) -> Result<ResultsTable> {
    let shown = source;
    check_schema(shown, &metadata)?;
    let not_parquet = |e: PolarsError| input(format!("{shown}: not a readable table: {}", first_line(&e)));
    // A column name with a byte-order mark (a CSV from Excel converted as is) is that column.
    let marked: Vec<String> = df
        .get_column_names()
        .iter()
        .filter(|n| n.starts_with('\u{feff}'))
        .map(|n| n.to_string())
        .collect();
    for name in marked {
        df.rename(&name, mb_stats_files::text::strip_bom(&name).into())
            .map_err(not_parquet)?;
    }
    if df.height() == 0 {
        return Err(input(format!("{shown}: no rows; a results table needs at least one")));
    }
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let mut column = |name: &str| -> std::result::Result<DataFrame, String> {
        Ok(df.select([name]).unwrap_or_else(|_| DataFrame::empty()))
    };
    from_columns(&names, &mut column, metadata).map_err(|m| input(format!("{shown}: {m}")))
}

/// A named extra column of a results table.
type ExtraColumn = (String, Vec<Option<f64>>);

/// A table's columns by name, each as a data frame holding it (empty when absent).
type ColumnSource<'a> = dyn FnMut(&str) -> std::result::Result<DataFrame, String> + 'a;

/// The numeric columns outside schema v1's (a task's own, like cloze's `rank`), as floats;
/// other unknown columns are ignored.
fn extra_columns(names: &[String], column: &mut ColumnSource) -> std::result::Result<Vec<ExtraColumn>, String> {
    let mut extra = Vec::new();
    for name in names.iter().filter(|n| !super::COLUMNS.contains(&n.as_str())) {
        let df = column(name)?;
        if df.column(name).is_ok_and(|c| c.dtype().is_primitive_numeric()) {
            extra.push((name.to_string(), floats(&df, name)?.expect("the column exists")));
        }
    }
    Ok(extra)
}

fn first_line(e: &PolarsError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Converts a data frame into a table; errors name the column.
/// A table from its columns, fetched one by one from `column` (`names`: those present).
fn from_columns(
    names: &[String],
    column: &mut ColumnSource,
    metadata: Vec<(String, String)>,
) -> std::result::Result<ResultsTable, String> {
    let missing: Vec<&str> = ["group", "seed", "example"]
        .into_iter()
        .filter(|c| !names.iter().any(|n| n == c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing required column(s) {} (schema v1 needs group, seed, example)",
            missing.join(", ")
        ));
    }
    let group = texts(&column("group")?, "group")?.expect("present");
    if let Some(i) = group.first_null() {
        return Err(format!(
            "column group has a null in row {i} of {}; it must not have nulls",
            group.len()
        ));
    }
    let seed = required(integers(&column("seed")?, "seed")?.unwrap(), "seed")?;
    let examples = column("example")?;
    let example = match examples.column("example").map(|c| c.dtype().clone()) {
        Ok(DataType::String) => ExampleIds::Text(required(strings(&examples, "example")?.unwrap(), "example")?),
        _ => ExampleIds::Int(required(integers(&examples, "example")?.unwrap(), "example")?),
    };
    drop(examples);
    let table = ResultsTable {
        group,
        seed,
        step: integers(&column("step")?, "step")?,
        run: integers(&column("run")?, "run")?,
        task: texts(&column("task")?, "task")?,
        layer: integers(&column("layer")?, "layer")?,
        example,
        label: numbers(&column("label")?, "label")?,
        prediction: numbers(&column("prediction")?, "prediction")?,
        score: floats(&column("score")?, "score")?,
        cluster: texts(&column("cluster")?, "cluster")?,
        extra: extra_columns(names, column)?,
        metadata,
    };
    Ok(table)
}

fn required<T>(values: Vec<Option<T>>, name: &str) -> std::result::Result<Vec<T>, String> {
    let n = values.len();
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("column {name} has a null in row {i} of {n}; it must not have nulls")))
        .collect()
}

fn integers(df: &DataFrame, name: &str) -> std::result::Result<Option<Vec<Option<i64>>>, String> {
    let Ok(column) = df.column(name) else {
        return Ok(None);
    };
    let dtype = column.dtype();
    if dtype.is_float() {
        let values = floats(df, name)?.unwrap_or_default();
        return values
            .into_iter()
            .map(|v| match v {
                Some(x) if x.fract() != 0.0 || !x.is_finite() => {
                    Err(format!("column {name} has value {x}; expected integers"))
                }
                _ => Ok(v.map(|x| x as i64)),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some);
    }
    if !dtype.is_integer() && !dtype.is_null() {
        return Err(format!("column {name} has type {dtype}; expected integers"));
    }
    // A strict cast: an unsigned value beyond i64 is refused by name, never read as a null.
    let cast = column.strict_cast(&DataType::Int64).map_err(|_| {
        let too_large = column.cast(&DataType::UInt64).ok().and_then(|c| {
            c.u64()
                .ok()
                .and_then(|v| v.iter().flatten().find(|&x| x > i64::MAX as u64))
        });
        match too_large {
            Some(x) => format!("column {name} has value {x}; expected integers up to {}", i64::MAX),
            None => format!("column {name}: values that do not fit a 64-bit integer"),
        }
    })?;
    Ok(Some(cast.i64().map_err(|e| first_line(&e))?.iter().collect()))
}

fn floats(df: &DataFrame, name: &str) -> std::result::Result<Option<Vec<Option<f64>>>, String> {
    let Ok(column) = df.column(name) else {
        return Ok(None);
    };
    let dtype = column.dtype();
    if !dtype.is_primitive_numeric() && !dtype.is_null() {
        return Err(format!("column {name} has type {dtype}; expected numbers"));
    }
    let cast = column
        .cast(&DataType::Float64)
        .map_err(|e| format!("column {name}: {}", first_line(&e)))?;
    Ok(Some(cast.f64().map_err(|e| first_line(&e))?.iter().collect()))
}

fn numbers(df: &DataFrame, name: &str) -> std::result::Result<Option<Numbers>, String> {
    match df.column(name).map(|c| c.dtype().is_float()) {
        Err(_) => Ok(None),
        Ok(true) => Ok(floats(df, name)?.map(Numbers::Float)),
        Ok(false) => Ok(integers(df, name)?.map(Numbers::Int)),
    }
}

/// A text column, dictionary-encoded as it is read.
fn texts(df: &DataFrame, name: &str) -> std::result::Result<Option<Texts>, String> {
    let Ok(column) = df.column(name) else {
        return Ok(None);
    };
    let cast = text_column(column, name)?;
    let values = cast.str().map_err(|e| first_line(&e))?;
    Ok(Some(values.iter().collect()))
}

/// A text column as one string per row (text example ids).
fn strings(df: &DataFrame, name: &str) -> std::result::Result<Option<Vec<Option<String>>>, String> {
    let Ok(column) = df.column(name) else {
        return Ok(None);
    };
    let cast = text_column(column, name)?;
    let values = cast.str().map_err(|e| first_line(&e))?;
    Ok(Some(values.iter().map(|v| v.map(str::to_string)).collect()))
}

/// `column` as polars text, refusing types that are not text.
fn text_column(column: &Column, name: &str) -> std::result::Result<Column, String> {
    let dtype = column.dtype();
    // Dictionary-encoded (categorical) text is text: what pandas writes for a `category`
    // column, and what large tables use.
    if !(dtype.is_string() || dtype.is_integer() || dtype.is_null() || dtype.is_categorical()) {
        return Err(format!("column {name} has type {dtype}; expected text"));
    }
    column
        .cast(&DataType::String)
        .map_err(|e| format!("column {name}: {}", first_line(&e)))
}

/// The table as a polars data frame (absent optional columns are left out).
pub fn to_frame(table: &ResultsTable) -> Result<DataFrame> {
    table.check_lengths().map_err(Error::Output)?;
    let mut columns = vec![
        text_frame_column("group", &table.group),
        Column::new("seed".into(), &table.seed),
    ];
    let mut push = |c: Column| columns.push(c);
    if let Some(v) = &table.step {
        push(Column::new("step".into(), v));
    }
    if let Some(v) = &table.run {
        push(Column::new("run".into(), v));
    }
    if let Some(v) = &table.task {
        push(text_frame_column("task", v));
    }
    if let Some(v) = &table.layer {
        push(Column::new("layer".into(), v));
    }
    push(match &table.example {
        ExampleIds::Int(v) => Column::new("example".into(), v),
        ExampleIds::Text(v) => Column::new("example".into(), v),
    });
    for (name, values) in [("label", &table.label), ("prediction", &table.prediction)] {
        match values {
            Some(Numbers::Int(v)) => push(Column::new(name.into(), v)),
            Some(Numbers::Float(v)) => push(Column::new(name.into(), v)),
            None => {}
        }
    }
    if let Some(v) = &table.score {
        push(Column::new("score".into(), v));
    }
    if let Some(v) = &table.cluster {
        push(text_frame_column("cluster", v));
    }
    for (name, v) in &table.extra {
        push(Column::new(name.as_str().into(), v));
    }
    DataFrame::new(table.len(), columns).map_err(|e| Error::Output(first_line(&e)))
}

/// A text column of a table as polars text.
fn text_frame_column(name: &str, texts: &Texts) -> Column {
    let values: StringChunked = texts.iter().collect();
    values.with_name(name.into()).into_column()
}

/// Writes a table atomically with its metadata plus the schema version and tool version.
pub fn write(table: &ResultsTable, path: &Path) -> Result<()> {
    let mut df = to_frame(table)?;
    let mut metadata: Vec<(String, String)> = table
        .metadata
        .iter()
        .filter(|(k, _)| k != footer::SCHEMA && k != footer::VERSION)
        .cloned()
        .collect();
    metadata.push((footer::SCHEMA.into(), SCHEMA_VERSION.into()));
    metadata.push((footer::VERSION.into(), env!("CARGO_PKG_VERSION").into()));
    write_frame(&mut df, metadata, path)
}

/// Writes a table batch by batch, atomically: `fill` is handed a writer of batches (each a table
/// with the columns of `template`) and the file is put in place only when `fill` succeeds, so a
/// table larger than memory can be written from parts. Footer metadata as [`write`] writes it.
pub fn write_batches(
    path: &Path,
    template: &ResultsTable,
    metadata: Vec<(String, String)>,
    fill: impl FnOnce(&mut dyn FnMut(&ResultsTable) -> Result<()>) -> Result<()>,
) -> Result<()> {
    let empty = to_frame(template)?;
    let mut metadata = metadata;
    metadata.push((footer::SCHEMA.into(), SCHEMA_VERSION.into()));
    metadata.push((footer::VERSION.into(), env!("CARGO_PKG_VERSION").into()));
    let mut entries = metadata.clone();
    entries.push((ARROW_SCHEMA_KEY.to_string(), arrow_schema_with(&empty, &metadata)?));
    // `fill`'s own error (bad input) is kept apart from polars' (writing).
    let mut failed: Option<Error> = None;
    let written = atomic_write_with(path, |file| {
        let mut writer = ParquetWriter::new(file)
            .with_key_value_metadata(Some(KeyValueMetadata::from_static(entries)))
            .batched(empty.schema())
            .map_err(|e| std::io::Error::other(first_line(&e)))?;
        let mut write = |batch: &ResultsTable| -> Result<()> {
            writer
                .write_batch(&to_frame(batch)?)
                .map_err(|e| Error::Output(format!("{}: cannot write: {}", path.display(), first_line(&e))))
        };
        if let Err(e) = fill(&mut write) {
            failed = Some(e);
            return Err(std::io::Error::other("stopped"));
        }
        writer
            .finish()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(first_line(&e)))
    });
    match failed {
        Some(e) => Err(e),
        None => written,
    }
}

/// Writes any data frame atomically as Parquet with footer metadata. The metadata is written
/// twice: as Parquet key-value metadata (what polars, duckdb and `pyarrow.parquet.read_metadata`
/// show) and as the custom metadata of the Arrow schema stored in the footer (`ARROW:schema`,
/// what `pyarrow.parquet.read_table(...).schema.metadata` and pandas show).
pub fn write_frame(df: &mut DataFrame, metadata: Vec<(String, String)>, path: &Path) -> Result<()> {
    // An Arrow schema read from another file describes that file's columns, not these.
    let metadata: Vec<(String, String)> = metadata.into_iter().filter(|(k, _)| k != ARROW_SCHEMA_KEY).collect();
    let mut entries = metadata.clone();
    entries.push((ARROW_SCHEMA_KEY.to_string(), arrow_schema_with(df, &metadata)?));
    atomic_write_with(path, |file| {
        ParquetWriter::new(file)
            .with_key_value_metadata(Some(KeyValueMetadata::from_static(entries)))
            .finish(df)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(first_line(&e)))
    })
}

/// The footer key of the Arrow schema (base64 of an IPC schema message, as Arrow writes it).
const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// The `ARROW:schema` value polars writes for `df`, with `metadata` as the schema's custom
/// metadata. polars offers no way to set it, so its own encoding of the schema is taken from a
/// zero-row file written in memory and re-encoded with the metadata. Time: O(columns).
fn arrow_schema_with(df: &DataFrame, metadata: &[(String, String)]) -> Result<String> {
    use base64::Engine as _;
    use polars_arrow_format::ipc;
    use polars_arrow_format::ipc::planus::ReadAsRoot;
    let internal = |what: &str| Error::Output(format!("Arrow schema of the footer: {what}"));
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut df.head(Some(0)))
        .map_err(|e| internal(&first_line(&e)))?;
    let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
    let file_metadata = reader.get_metadata().map_err(|e| internal(&first_line(&e)))?;
    let encoded = file_metadata
        .key_value_metadata()
        .iter()
        .flatten()
        .find(|kv| kv.key == ARROW_SCHEMA_KEY)
        .and_then(|kv| kv.value.clone())
        .ok_or_else(|| internal("polars wrote none"))?;
    let engine = base64::engine::general_purpose::STANDARD;
    let raw = engine.decode(encoded).map_err(|e| internal(&e.to_string()))?;
    // Legacy IPC framing: 0xFFFFFFFF, the message length (little endian), the message.
    let message = raw.get(8..).ok_or_else(|| internal("too short"))?;
    let message = ipc::MessageRef::read_as_root(message).map_err(|e| internal(&e.to_string()))?;
    let mut message = ipc::Message::try_from(message).map_err(|e| internal(&e.to_string()))?;
    let Some(ipc::MessageHeader::Schema(schema)) = &mut message.header else {
        return Err(internal("not a schema message"));
    };
    schema.custom_metadata = Some(
        metadata
            .iter()
            .map(|(k, v)| ipc::KeyValue {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
    );
    let mut builder = ipc::planus::Builder::new();
    let body = builder.finish(&message, None);
    let mut framed = Vec::with_capacity(body.len() + 8);
    framed.extend_from_slice(&[255, 255, 255, 255]);
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(body);
    Ok(engine.encode(framed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars_arrow_format::ipc;
    use polars_arrow_format::ipc::planus::ReadAsRoot;

    #[test]
    fn footer_metadata_is_also_in_the_arrow_schema() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut df = DataFrame::new(1, vec![Column::new("seed".into(), &[1i64])]).unwrap();
        let old_schema = (ARROW_SCHEMA_KEY.to_string(), "stale".to_string());
        write_frame(&mut df, vec![("mb_stats.schema".into(), "1".into()), old_schema], &path).unwrap();
        let mut reader = ParquetReader::new(File::open(&path).unwrap());
        let kv: Vec<_> = reader.get_metadata().unwrap().key_value_metadata().clone().unwrap();
        let schemas: Vec<_> = kv.iter().filter(|kv| kv.key == ARROW_SCHEMA_KEY).collect();
        assert_eq!(schemas.len(), 1);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(schemas[0].value.as_ref().unwrap())
            .unwrap();
        let message = ipc::Message::try_from(ipc::MessageRef::read_as_root(&raw[8..]).unwrap()).unwrap();
        let Some(ipc::MessageHeader::Schema(schema)) = message.header else {
            panic!("a schema message")
        };
        let custom = schema.custom_metadata.unwrap();
        assert_eq!(custom[0].key.as_deref(), Some("mb_stats.schema"));
        assert_eq!(custom[0].value.as_deref(), Some("1"));
        assert_eq!(reader.finish().unwrap().height(), 1);
    }
}
