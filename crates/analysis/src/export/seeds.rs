//! `mb-stats seeds`: per-seed conclusions, the procedure beside them, agreement and
//! heterogeneity. The long table has one row per seed (`kind` = seed), per procedure quantity
//! (procedure) and per heterogeneity test (heterogeneity).

use super::table::{Block, Grid, Section, Shown, Table, Tabular, Value};
use super::{format_interval, format_p, method_line};
use crate::analysis::{Agreement, Heterogeneity, SeedsReport};

/// The CSV columns.
pub const COLUMNS: [&str; 16] = [
    "kind",
    "cell",
    "group",
    "seed",
    "estimate",
    "low",
    "high",
    "p_value",
    "conclusion",
    "test",
    "statistic",
    "n_seeds",
    "n_runs",
    "alpha",
    "nboot",
    "rng_seed",
];

impl Tabular for SeedsReport {
    fn table(&self) -> Table {
        let method = format!(
            "{}; each seed's own interval resamples examples only",
            method_line(&self.method)
        );
        Table {
            columns: COLUMNS.to_vec(),
            rows: rows(self),
            document: document(self),
            sections: sections(self),
            footer: vec![
                Block::list(findings(self)),
                Block::paragraph(method).only(Shown::Markdown),
            ],
        }
    }
}

/// The procedure's conclusion in `cell`.
fn conclusion<'a>(report: &'a SeedsReport, cell: &str) -> Option<&'a str> {
    report
        .agreement
        .iter()
        .find(|a| a.cell == cell)
        .map(|a| a.procedure.name())
}

/// The long rows: seeds, then the procedure, then the heterogeneity tests.
fn rows(report: &SeedsReport) -> Vec<Vec<Value>> {
    let settings = [
        Value::Number(report.alpha),
        Value::count(report.method.nboot),
        Value::Count(report.method.rng_seed),
    ];
    let interval = |i: &mb_stats_core::summary::Interval| [i.estimate, i.low, i.high].map(Value::Number);
    let seeds = report.seeds.iter().map(|s| {
        let head = [
            Value::text("seed"),
            Value::text(&s.cell),
            Value::text(&s.group),
            Value::Integer(s.seed),
        ];
        let tail = [
            Value::number(s.p_value),
            Value::text_or_empty(s.conclusion.map(|c| c.name())),
            Value::Empty,
            Value::Empty,
            Value::Count(1),
            Value::count(s.n_runs),
        ];
        [&head[..], &interval(&s.interval), &tail].concat()
    });
    let procedure = report.procedure.iter().map(|r| {
        let head = [
            Value::text("procedure"),
            Value::text(&r.cell),
            Value::text(&r.group),
            Value::Empty,
        ];
        let tail = [
            Value::number(r.p_value),
            Value::Text(
                conclusion(report, &r.cell)
                    .filter(|_| r.p_value.is_some())
                    .unwrap_or_default()
                    .into(),
            ),
            Value::text(r.quantity.name()),
            Value::Empty,
            Value::count(r.n_seeds),
            Value::count(r.n_runs),
        ];
        [&head[..], &interval(&r.interval), &tail].concat()
    });
    let tests = report.heterogeneity.iter().map(|h| {
        vec![
            Value::text("heterogeneity"),
            Value::text(&h.cell),
            Value::text(&h.group),
            Value::Empty,
            Value::Empty,
            Value::Empty,
            Value::Empty,
            Value::Number(h.result.p_value),
            Value::Empty,
            Value::text(h.test),
            Value::Number(h.result.statistic),
            Value::count(h.n_seeds),
            Value::count(h.n_runs),
        ]
    });
    seeds
        .chain(procedure)
        .chain(tests)
        .map(|mut row| {
            row.extend(settings.iter().cloned());
            row
        })
        .collect()
}

/// The JSON document: method, seeds, procedure, agreement and heterogeneity.
fn document(report: &SeedsReport) -> Vec<(&'static str, Value)> {
    let seeds = report.seeds.iter().map(|s| {
        Value::Record(vec![
            ("cell", Value::text(&s.cell)),
            ("group", Value::text(&s.group)),
            ("seed", Value::Integer(s.seed)),
            ("n_runs", Value::count(s.n_runs)),
            ("estimate", Value::Number(s.interval.estimate)),
            ("low", Value::Number(s.interval.low)),
            ("high", Value::Number(s.interval.high)),
            ("p_value", Value::number(s.p_value)),
            ("conclusion", Value::text_or_empty(s.conclusion.map(|c| c.name()))),
        ])
    });
    let procedure = report.procedure.iter().map(|r| {
        Value::Record(vec![
            ("cell", Value::text(&r.cell)),
            ("group", Value::text(&r.group)),
            ("quantity", Value::text(r.quantity.name())),
            ("estimate", Value::Number(r.interval.estimate)),
            ("low", Value::Number(r.interval.low)),
            ("high", Value::Number(r.interval.high)),
            ("p_value", Value::number(r.p_value)),
        ])
    });
    let method = Value::Record(vec![
        ("description", Value::Text(method_line(&report.method))),
        ("alpha", Value::Number(report.alpha)),
        ("permutations", Value::count(report.permutations)),
        ("nboot", Value::count(report.method.nboot)),
        ("rng_seed", Value::Count(report.method.rng_seed)),
    ]);
    vec![
        ("method", method),
        ("seeds", Value::List(seeds.collect())),
        ("procedure", Value::List(procedure.collect())),
        (
            "agreement",
            Value::List(report.agreement.iter().map(agreement).collect()),
        ),
        (
            "heterogeneity",
            Value::List(report.heterogeneity.iter().map(heterogeneity).collect()),
        ),
    ]
}

/// One cell's agreement as a record.
fn agreement(a: &Agreement) -> Value {
    let seeds = |v: &[i64]| Value::List(v.iter().map(|&s| Value::Integer(s)).collect());
    Value::Record(vec![
        ("cell", Value::text(&a.cell)),
        ("procedure", Value::text(a.procedure.name())),
        ("agree", seeds(&a.agree)),
        ("opposite", seeds(&a.opposite)),
        ("missed", seeds(&a.missed)),
        ("spurious", seeds(&a.spurious)),
    ])
}

/// One heterogeneity test as a record.
fn heterogeneity(h: &Heterogeneity) -> Value {
    Value::Record(vec![
        ("cell", Value::text(&h.cell)),
        ("group", Value::text(&h.group)),
        ("test", Value::text(h.test)),
        ("statistic", Value::Number(h.result.statistic)),
        ("p_value", Value::Number(h.result.p_value)),
        ("n_seeds", Value::count(h.n_seeds)),
        ("n_runs", Value::count(h.n_runs)),
    ])
}

/// Per cell: the seeds' rows and the procedure's rows (headed in Markdown when several).
fn sections(report: &SeedsReport) -> Vec<Section> {
    let metric = report.method.metric;
    let header = ["group", "seed", "runs", "estimate [CI]", "p", "conclusion"]
        .map(String::from)
        .to_vec();
    let mut cells: Vec<String> = report.procedure.iter().map(|r| r.cell.clone()).collect();
    cells.dedup();
    let titled = cells.len() > 1;
    cells
        .into_iter()
        .map(|cell| {
            let mut body: Vec<Vec<String>> = report
                .seeds
                .iter()
                .filter(|s| s.cell == cell)
                .map(|s| {
                    vec![
                        s.group.clone(),
                        s.seed.to_string(),
                        s.n_runs.to_string(),
                        format_interval(metric, &s.interval),
                        s.p_value.map_or(String::new(), format_p),
                        s.conclusion.map_or(String::new(), |c| c.name().into()),
                    ]
                })
                .collect();
            for r in report.procedure.iter().filter(|r| r.cell == cell) {
                body.push(vec![
                    format!("procedure: {} ({})", r.group, r.quantity.name()),
                    format!("{} seeds", r.n_seeds),
                    r.n_runs.to_string(),
                    format_interval(metric, &r.interval),
                    r.p_value.map_or(String::new(), format_p),
                    conclusion(report, &cell)
                        .filter(|_| r.p_value.is_some())
                        .unwrap_or_default()
                        .into(),
                ]);
            }
            let grid = Grid {
                header: header.clone(),
                body,
            };
            Section {
                title: titled.then_some((cell, Shown::Markdown)),
                grids: vec![grid],
                notes: Vec::new(),
            }
        })
        .collect()
}

/// The agreement and heterogeneity lines.
fn findings(report: &SeedsReport) -> Vec<String> {
    let list = |v: &[i64]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
        }
    };
    let mut lines = Vec::new();
    for a in &report.agreement {
        let total = a.agree.len() + a.opposite.len() + a.missed.len() + a.spurious.len();
        lines.push(format!(
            "[{}] procedure: {} at alpha {}; {} of {total} seeds agree; significant opposite: {}; missed the effect: {}; significant where the procedure is not: {}",
            a.cell, a.procedure.name(), report.alpha, a.agree.len(), list(&a.opposite), list(&a.missed), list(&a.spurious)
        ));
    }
    for h in &report.heterogeneity {
        let test = match h.test {
            "permutation" => format!("runs permuted across seeds ({} permutations)", report.permutations),
            _ => "seed spread vs example sampling".to_string(),
        };
        lines.push(format!(
            "[{}] no-seed-effect test for {}: {test}, statistic {:.4e}, p = {} ({} seeds, {} runs)",
            h.cell,
            h.group,
            h.result.statistic,
            format_p(h.result.p_value),
            h.n_seeds,
            h.n_runs
        ));
    }
    lines
}
