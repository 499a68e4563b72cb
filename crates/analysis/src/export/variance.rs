//! `mb-stats variance`: each component with its interval, and the implied standard errors for
//! more seeds, runs or examples. In the long table `kind` is `component` or `standard_error`
//! (then `name` is the design).

use super::table::{Block, Grid, Section, Shown, Table, Tabular, Value};
use crate::analysis::Method;
use crate::analysis::{VarianceReport, VarianceRow};

/// The CSV columns.
pub const COLUMNS: [&str; 10] = [
    "kind", "cell", "group", "name", "estimate", "low", "high", "seeds", "runs", "examples",
];

const NOTE: &str = "Method of moments for the crossed design (seeds × examples, runs nested in seeds), estimates \
truncated at 0; with one run per seed, run is folded into seed and the residual into seed × example (n/a). \
Intervals: modified large-sample (Graybill & Wang 1980; Ting et al. 1990) from the mean squares, valid at and near 0 \
(the seed interval's lower end leaves 0 when the F test of no seed effect rejects at the one-sided level); with \
clusters, example-level degrees of freedom count clusters. Seed test: the test of no seed effect that `seeds` runs. \
Implied SE: the standard error of the procedure estimate with the given seeds, runs and examples.";

impl Tabular for VarianceReport {
    fn table(&self) -> Table {
        let method = method_line(&self.method);
        Table {
            columns: COLUMNS.to_vec(),
            rows: self.rows.iter().flat_map(rows).collect(),
            document: vec![
                ("method", Value::Text(method.clone())),
                ("rows", Value::List(self.rows.iter().map(record).collect())),
            ],
            sections: self.rows.iter().map(|r| section(r, self.method.confidence)).collect(),
            footer: vec![Block::paragraph(NOTE.into()), Block::paragraph(method)],
        }
    }
}

/// The method line of `variance`: what the intervals and the seed test are.
fn method_line(m: &Method) -> String {
    format!(
        "Variance components: metric {}, {}% modified large-sample intervals from the mean squares; seed test as \
         `seeds` runs it (permutation of runs, or the spread of seeds against {} examples-only replicates of \
         {}), rng seed {}",
        m.metric,
        m.confidence * 100.0,
        m.nboot,
        m.unit(),
        m.rng_seed
    )
}

/// The long rows of one group and cell: its components, then its implied standard errors.
fn rows(r: &VarianceRow) -> Vec<Vec<Value>> {
    let key = |kind: &str, name: String| {
        vec![
            Value::text(kind),
            Value::text(&r.cell),
            Value::text(&r.group),
            Value::Text(name),
        ]
    };
    let components = r
        .components
        .named()
        .into_iter()
        .zip(r.intervals)
        .map(|((name, v), (low, high))| {
            let values = [v, low, high].map(Value::defined);
            let sizes = [r.n_seeds, r.n_runs, r.n_examples].map(Value::count);
            [&key("component", name.into())[..], &values, &sizes].concat()
        });
    let implied = r.implied().into_iter().map(|(s, runs, n, se)| {
        let values = [Value::Number(se), Value::Empty, Value::Empty];
        let sizes = [s, runs, n].map(Value::count);
        [
            &key("standard_error", format!("S={s},R={runs},N={n}"))[..],
            &values,
            &sizes,
        ]
        .concat()
    });
    components.chain(implied).collect()
}

/// One group and cell as a JSON record.
fn record(r: &VarianceRow) -> Value {
    let components = r
        .components
        .named()
        .into_iter()
        .zip(r.intervals)
        .map(|((name, v), (lo, hi))| {
            Value::Record(vec![
                ("name", Value::text(name)),
                ("estimate", Value::defined(v)),
                ("low", Value::defined(lo)),
                ("high", Value::defined(hi)),
            ])
        });
    let implied = r.implied().into_iter().map(|(s, runs, n, se)| {
        Value::Record(vec![
            ("seeds", Value::count(s)),
            ("runs", Value::count(runs)),
            ("examples", Value::count(n)),
            ("se", Value::Number(se)),
        ])
    });
    Value::Record(vec![
        ("cell", Value::text(&r.cell)),
        ("group", Value::text(&r.group)),
        ("n_seeds", Value::count(r.n_seeds)),
        ("n_runs", Value::count(r.n_runs)),
        ("n_examples", Value::count(r.n_examples)),
        ("components", Value::List(components.collect())),
        ("seed_test", seed_test(r)),
        ("note", r.note.as_deref().map_or(Value::Empty, Value::text)),
        ("implied_standard_errors", Value::List(implied.collect())),
    ])
}

/// The seed test as a JSON record (empty with one seed).
fn seed_test(r: &VarianceRow) -> Value {
    r.seed_test.as_ref().map_or(Value::Empty, |t| {
        Value::Record(vec![
            ("test", Value::text(t.test)),
            ("statistic", Value::Number(t.result.statistic)),
            ("p_value", Value::Number(t.result.p_value)),
        ])
    })
}

/// One group and cell as printed: a title, the components table and the standard-error table.
fn section(r: &VarianceRow, confidence: f64) -> Section {
    let num = |x: f64| {
        if x.is_nan() {
            "n/a".to_string()
        } else {
            format!("{x:.4e}")
        }
    };
    let components = Grid {
        header: vec![
            "component".into(),
            "variance".into(),
            format!("{}% CI", confidence * 100.0),
        ],
        body: r
            .components
            .named()
            .into_iter()
            .zip(r.intervals)
            .map(|((name, v), (lo, hi))| vec![name.to_string(), num(v), format!("[{}, {}]", num(lo), num(hi))])
            .collect(),
    };
    let implied = Grid {
        header: ["seeds", "runs", "examples", "implied SE"].map(String::from).to_vec(),
        body: r
            .implied()
            .into_iter()
            .map(|(s, runs, n, se)| vec![s.to_string(), runs.to_string(), n.to_string(), format!("{se:.4e}")])
            .collect(),
    };
    let title = format!(
        "{} ({}): {} seeds × {} runs × {} examples",
        r.group, r.cell, r.n_seeds, r.n_runs, r.n_examples
    );
    let test = r.seed_test.as_ref().map(|t| {
        format!(
            "seed test ({}, as `seeds` runs it): p = {:.3}",
            t.test, t.result.p_value
        )
    });
    Section {
        title: Some((title, Shown::Everywhere)),
        grids: vec![components, implied],
        notes: test.into_iter().chain(r.note.clone()).collect(),
    }
}
