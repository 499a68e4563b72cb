//! The one form every analysis is exported in: a long table of raw values (CSV), a document of
//! raw values (JSON), and text tables with their prose (Markdown, LaTeX, the terminal).

/// A raw value: full precision, typed for JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A real number (JSON `null` when not finite, an empty CSV cell when NaN).
    Number(f64),
    /// A non-negative count.
    Count(u64),
    /// A signed integer (seeds, steps).
    Integer(i64),
    /// Nothing: an empty CSV cell, JSON `null`.
    Empty,
    /// A JSON array.
    List(Vec<Value>),
    /// A JSON object, by key.
    Record(Vec<(&'static str, Value)>),
}

impl Value {
    /// Text from anything printable.
    pub fn text(v: impl ToString) -> Self {
        Value::Text(v.to_string())
    }

    /// Text, or empty when absent.
    pub fn text_or_empty(v: Option<impl ToString>) -> Self {
        v.map_or(Value::Empty, Value::text)
    }

    /// A number, or empty when absent.
    pub fn number(v: Option<f64>) -> Self {
        v.map_or(Value::Empty, Value::Number)
    }

    /// A number, or empty when NaN (an undefined estimate).
    pub fn defined(x: f64) -> Self {
        Value::number(Some(x).filter(|x| !x.is_nan()))
    }

    /// A count of things.
    pub fn count(n: usize) -> Self {
        Value::Count(n as u64)
    }

    /// Full-precision text (the shortest that reads back the same f64) for a CSV cell.
    pub fn plain(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Number(x) if x.is_nan() => String::new(),
            Value::Number(x) => x.to_string(),
            Value::Count(n) => n.to_string(),
            Value::Integer(n) => n.to_string(),
            Value::Empty | Value::List(_) | Value::Record(_) => String::new(),
        }
    }
}

/// Which human-readable formats print a piece of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Markdown (and the terminal) and LaTeX.
    Everywhere,
    /// Markdown and the terminal only.
    Markdown,
    /// LaTeX only.
    Latex,
}

impl Shown {
    /// Whether Markdown prints it.
    pub fn in_markdown(self) -> bool {
        self != Shown::Latex
    }

    /// Whether LaTeX prints it.
    pub fn in_latex(self) -> bool {
        self != Shown::Markdown
    }
}

/// A text table: header and rows of cells as printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// The column headers.
    pub header: Vec<String>,
    /// The rows, one text per column.
    pub body: Vec<Vec<String>>,
}

/// One titled part of the human-readable output: its tables and the lines under them.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// The heading and where it is printed.
    pub title: Option<(String, Shown)>,
    /// The tables, in order.
    pub grids: Vec<Grid>,
    /// Lines under the tables (a list in Markdown).
    pub notes: Vec<String>,
}

impl Section {
    /// One table under an optional heading printed everywhere.
    pub fn new(title: Option<String>, grid: Grid) -> Self {
        Section {
            title: title.map(|t| (t, Shown::Everywhere)),
            grids: vec![grid],
            notes: Vec::new(),
        }
    }
}

/// Prose under the sections: a paragraph or a list.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The lines (one paragraph line, or the list's items).
    pub lines: Vec<String>,
    /// Whether Markdown prints the lines as a list.
    pub list: bool,
    /// Where the block is printed.
    pub shown: Shown,
}

impl Block {
    /// A one-line paragraph printed everywhere.
    pub fn paragraph(text: String) -> Self {
        Block {
            lines: vec![text],
            list: false,
            shown: Shown::Everywhere,
        }
    }

    /// A list printed everywhere.
    pub fn list(lines: Vec<String>) -> Self {
        Block {
            lines,
            list: true,
            shown: Shown::Everywhere,
        }
    }

    /// The block printed only where `shown` says.
    pub fn only(self, shown: Shown) -> Self {
        Block { shown, ..self }
    }
}

/// An analysis in exportable form.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The long table's column names (CSV header).
    pub columns: Vec<&'static str>,
    /// The long table's rows, one raw value per column.
    pub rows: Vec<Vec<Value>>,
    /// The document's top-level keys and values (JSON).
    pub document: Vec<(&'static str, Value)>,
    /// The text tables (Markdown, LaTeX).
    pub sections: Vec<Section>,
    /// The prose under the sections (Markdown, LaTeX).
    pub footer: Vec<Block>,
}

impl Table {
    /// The long table's rows as records keyed by column, keeping the columns in `keys`.
    pub fn records(&self, keys: &[&str]) -> Value {
        let records = self
            .rows
            .iter()
            .map(|row| {
                let fields = self.columns.iter().zip(row).filter(|(c, _)| keys.contains(c));
                Value::Record(fields.map(|(&c, v)| (c, v.clone())).collect())
            })
            .collect();
        Value::List(records)
    }
}

/// Turns an analysis's report into its [`Table`].
pub trait Tabular {
    /// The report in exportable form.
    fn table(&self) -> Table;
}
