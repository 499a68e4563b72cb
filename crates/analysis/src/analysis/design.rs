//! From a results table to per-cell designs: [`Prepared`] checks the options, interns the ids
//! once and splits the rows into [`Cell`]s; it then arranges any rows of a cell (a group, or the
//! two sides of a comparison) into the [`Parts`] of a `Design`. Every analysis builds its
//! designs here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use super::{Method, Options};
use crate::results::filter::Key;
use crate::results::{ExampleIds, ResultsTable, Texts};
use mb_stats_core::design::{Outcomes, Seed, Side};
use mb_stats_files::error::{Error, Result, input};

/// A cell value of `--by`: integers, or task names as their sorted codes (nulls first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CellValue {
    Null,
    Int(i64),
    Task(u32),
}

impl CellValue {
    fn of(table: &ResultsTable, tasks: &Codes, key: Key, row: usize) -> Self {
        let int =
            |c: &Option<Vec<Option<i64>>>| c.as_ref().and_then(|v| v[row]).map_or(CellValue::Null, CellValue::Int);
        match key {
            Key::Task => match tasks.codes[row] {
                NULL_CODE => CellValue::Null,
                code => CellValue::Task(code),
            },
            Key::Layer => int(&table.layer),
            _ => int(&table.step),
        }
    }

    fn text(self, tasks: &Codes) -> Option<String> {
        match self {
            CellValue::Null => None,
            CellValue::Int(v) => Some(v.to_string()),
            CellValue::Task(code) => Some(tasks.names[code as usize].clone()),
        }
    }
}

/// A null step means "final or unknown" (DESIGN): the checkpoint of an arm without steps, such
/// as a one-seed original BERT beside a suite's intermediate checkpoints. Split by step, its rows
/// join every step's cell (same other `--by` values), so it is compared at every step; they keep
/// a cell of their own only when no cell of theirs has a step.
fn join_stepless_rows(cells: &mut BTreeMap<Vec<CellValue>, Vec<usize>>, at: usize) {
    let stepless: Vec<Vec<CellValue>> = cells.keys().filter(|k| k[at] == CellValue::Null).cloned().collect();
    for key in stepless {
        let same_cell_but_step = |k: &Vec<CellValue>| {
            k[at] != CellValue::Null && k.iter().zip(&key).enumerate().all(|(i, (a, b))| i == at || a == b)
        };
        let stepped: Vec<Vec<CellValue>> = cells.keys().filter(|k| same_cell_but_step(k)).cloned().collect();
        if stepped.is_empty() {
            continue;
        }
        let rows = cells.remove(&key).unwrap_or_default();
        for k in stepped {
            let cell = cells.get_mut(&k).expect("a key of the map");
            cell.extend_from_slice(&rows);
            cell.sort_unstable();
        }
    }
}

/// The table split into cells, with its ids interned once for every analysis.
pub struct Prepared<'a> {
    table: &'a ResultsTable,
    options: &'a Options,
    examples: Codes,
    groups: Codes,
    clusters: Option<Codes>,
    cells: Vec<(Cell, Vec<usize>)>,
    /// For a comparison, which rows the base and the treatment filters select.
    masks: Vec<Vec<bool>>,
}

impl<'a> Prepared<'a> {
    /// Checks the options against the table, interns ids and splits the rows into cells.
    pub fn new(table: &'a ResultsTable, options: &'a Options) -> Result<Self> {
        options.check(table)?;
        let clusters = match (&table.cluster, options.ignore_clusters) {
            (Some(c), false) => Some(Codes::required_texts(c, "cluster")?),
            _ => None,
        };
        let tasks = match &table.task {
            Some(t) => Codes::sorted(t.len(), |i| t.get(i)),
            None => Codes {
                codes: vec![NULL_CODE; table.len()],
                names: Vec::new(),
            },
        };
        let mut cells: BTreeMap<Vec<CellValue>, Vec<usize>> = BTreeMap::new();
        let mut key = Vec::new();
        if options.by.is_empty() {
            cells.insert(Vec::new(), (0..table.len()).collect());
        }
        for row in (0..table.len()).filter(|_| !options.by.is_empty()) {
            key.clear();
            key.extend(options.by.iter().map(|&k| CellValue::of(table, &tasks, k, row)));
            match cells.get_mut(&key) {
                Some(rows) => rows.push(row),
                None => {
                    cells.insert(key.clone(), vec![row]);
                }
            }
        }
        if let Some(at) = options.by.iter().position(|&k| k == Key::Step) {
            join_stepless_rows(&mut cells, at);
        }
        // Each filter is evaluated once per row.
        let mut masks = Vec::new();
        if let Some((base, treatment)) = &options.comparison {
            for (flag, filter) in [("{base}", base), ("{treatment}", treatment)] {
                let mask = filter.mask(table);
                if !mask.contains(&true) {
                    return Err(Error::named(format!("{flag} {filter} selects no rows")));
                }
                masks.push(mask);
            }
        }
        let groups = Codes::sorted(table.len(), |i| table.group.get(i));
        let examples = Codes::examples(&table.example);
        let cells = cells
            .into_iter()
            .map(|(key, rows)| (Cell::new(options, &tasks, &key), rows))
            .collect();
        Ok(Self {
            table,
            options,
            examples,
            groups,
            clusters,
            cells,
            masks,
        })
    }

    /// The cells of `--by` in sorted order, each with its rows of the table.
    pub fn cells(&self) -> &[(Cell, Vec<usize>)] {
        &self.cells
    }

    /// The settings every output of these options records.
    pub fn method(&self) -> Method {
        Method::new(self.options, self.clusters.is_some())
    }

    /// The groups of `rows`, sorted and joined by `+`.
    pub fn group_names(&self, rows: &[usize]) -> String {
        let mut codes: Vec<u32> = rows.iter().map(|&i| self.groups.codes[i]).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
            .iter()
            .map(|&c| self.groups.names[c as usize].as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The value of `key` (task, layer or step) shared by `rows` of `cell`: the cell's own
    /// value when `--by` splits on it, else the value every row has (`None` when they differ).
    pub fn shared_value(&self, cell: &Cell, rows: &[usize], key: Key) -> Option<String> {
        let table = self.table;
        if let Some((_, v)) = cell.values.iter().find(|(k, _)| *k == key) {
            return v.clone();
        }
        let first = rows[0];
        let present = match key {
            Key::Task => table.task.is_some(),
            Key::Layer => table.layer.is_some(),
            _ => table.step.is_some(),
        };
        (present && rows.iter().all(|&r| key.same(table, first, r)))
            .then(|| key.value(table, first))
            .flatten()
    }

    /// The rows of each group in a cell (groups in sorted order).
    pub fn by_group(&self, cell_rows: &[usize]) -> Vec<Vec<usize>> {
        let groups = &self.groups;
        let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); groups.names.len()];
        cell_rows
            .iter()
            .for_each(|&r| by_group[groups.codes[r] as usize].push(r));
        by_group.retain(|g| !g.is_empty());
        by_group
    }

    /// The base and treatment rows of a cell; errors when a filter selects none or the options
    /// have no comparison.
    pub fn sides(&self, cell: &Cell, cell_rows: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
        let Some((base, treatment)) = &self.options.comparison else {
            return Err(Error::named(
                "this analysis needs a comparison: {base} FILTER {treatment} FILTER",
            ));
        };
        let pick = |mask: &[bool]| cell_rows.iter().copied().filter(|&r| mask[r]).collect::<Vec<_>>();
        let (b, t) = (pick(&self.masks[0]), pick(&self.masks[1]));
        for (flag, filter, side) in [("{base}", base, &b), ("{treatment}", treatment, &t)] {
            if side.is_empty() {
                return Err(Error::named(format!(
                    "{flag} {filter} selects no rows in cell {}",
                    cell.label()
                )));
            }
        }
        Ok((b, t))
    }
}

/// The code of a null value.
const NULL_CODE: u32 = u32::MAX;

/// Dense codes of a column's values, numbered in sorted order (so designs do not depend on the
/// order of rows in the file). Time: O(rows log distinct).
struct Codes {
    codes: Vec<u32>,
    names: Vec<String>,
}

impl Codes {
    fn examples(ids: &ExampleIds) -> Self {
        match ids {
            ExampleIds::Int(v) => Self::integers(v),
            ExampleIds::Text(v) => Self::sorted(v.len(), |i| Some(&v[i])),
        }
    }

    fn required_texts(values: &Texts, column: &str) -> Result<Self> {
        let n = values.len();
        if let Some(i) = values.first_null() {
            return Err(input(format!(
                "column {column} has a null in row {i} of {n}; every example needs a {column}"
            )));
        }
        Ok(Self::sorted(n, |i| values.get(i)))
    }

    /// Integer ids through a direct lookup table when they are dense (the usual 0..N), which
    /// is several times faster than sorting; otherwise by sorting.
    fn integers(values: &[i64]) -> Self {
        let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
            return Self {
                codes: Vec::new(),
                names: Vec::new(),
            };
        };
        let span = max.abs_diff(min) as usize;
        if span > 4 * values.len() + 1024 {
            return Self::sorted(values.len(), |i| Some(&values[i]));
        }
        let mut table = vec![NULL_CODE; span + 1];
        values.iter().for_each(|&v| table[(v - min) as usize] = 0);
        let mut names = Vec::new();
        for (offset, slot) in table.iter_mut().enumerate().filter(|(_, s)| **s == 0) {
            *slot = names.len() as u32;
            names.push((min + offset as i64).to_string());
        }
        Self {
            codes: values.iter().map(|&v| table[(v - min) as usize]).collect(),
            names,
        }
    }

    /// Codes of `n` values (`get(i)`, `None` for null) in sorted order of the distinct values.
    /// Rows of one run are usually adjacent, so a row that repeats the previous value skips
    /// the hash lookup.
    fn sorted<'a, T: Ord + Hash + ToString + ?Sized + 'a>(n: usize, get: impl Fn(usize) -> Option<&'a T>) -> Self {
        let mut index: HashMap<&T, u32> = HashMap::new();
        let mut previous: Option<&T> = None;
        for value in (0..n).filter_map(&get) {
            if previous != Some(value) {
                index.entry(value).or_insert(0);
                previous = Some(value);
            }
        }
        let mut distinct: Vec<&T> = index.keys().copied().collect();
        distinct.sort_unstable();
        distinct
            .iter()
            .enumerate()
            .for_each(|(code, v)| *index.get_mut(v).expect("distinct value") = code as u32);
        let mut last: Option<(&T, u32)> = None;
        let codes = (0..n)
            .map(|i| match (get(i), last) {
                (None, _) => NULL_CODE,
                (Some(v), Some((previous, code))) if v == previous => code,
                (Some(v), _) => {
                    let code = index[v];
                    last = Some((v, code));
                    code
                }
            })
            .collect();
        Self {
            codes,
            names: distinct.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// A cell of `--by`: its values and its label.
pub struct Cell {
    values: Vec<(Key, Option<String>)>,
    label: String,
}

impl Cell {
    fn new(options: &Options, tasks: &Codes, key: &[CellValue]) -> Self {
        let values: Vec<(Key, Option<String>)> = options.by.iter().zip(key).map(|(&k, v)| (k, v.text(tasks))).collect();
        let label = match values.is_empty() {
            true => "all".to_string(),
            false => values
                .iter()
                .map(|(k, v)| format!("{}={}", k.name(), v.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(","),
        };
        Self { values, label }
    }

    /// `task=…,layer=…`, or `all` without `--by`.
    pub fn label(&self) -> &str {
        &self.label
    }
}

const ABSENT: u32 = u32::MAX;

/// The ingredients of a design: sides, clusters and the number of examples.
pub struct Parts {
    /// The base side, or the only side of a group.
    pub base: Side,
    /// The treatment side of a comparison.
    pub treatment: Option<Side>,
    /// The dense cluster of each example, when examples are resampled by cluster.
    pub clusters: Option<Vec<u32>>,
    /// Examples of the design.
    pub n: usize,
}

impl Parts {
    /// The resampled units: clusters when there are clusters, otherwise examples.
    pub fn n_units(&self) -> usize {
        self.clusters
            .as_ref()
            .map_or(self.n, |c| c.iter().map(|&u| u as usize + 1).max().unwrap_or(0))
    }
}

impl Prepared<'_> {
    /// The sides of one analysis over the examples its rows cover (in sorted id order), and
    /// the cluster of each example. `where_` names a side (`base`, `treatment`) in messages.
    pub fn parts(
        &self,
        base_rows: &[usize],
        treatment_rows: Option<&[usize]>,
        where_: &dyn Fn(&str) -> String,
    ) -> Result<Parts> {
        let all_rows: Vec<usize> = base_rows.iter().chain(treatment_rows.unwrap_or(&[])).copied().collect();
        let all_rows = &all_rows[..];
        let mut position = vec![ABSENT; self.examples.names.len()];
        let mut example_codes: Vec<u32> = all_rows.iter().map(|&r| self.examples.codes[r]).collect();
        example_codes.sort_unstable();
        example_codes.dedup();
        example_codes
            .iter()
            .enumerate()
            .for_each(|(i, &c)| position[c as usize] = i as u32);
        let n = example_codes.len();
        let base = self.side(base_rows, &position, n, &example_codes, &where_("base"))?;
        let treatment = treatment_rows
            .map(|t| self.side(t, &position, n, &example_codes, &where_("treatment")))
            .transpose()?;
        let clusters = self
            .clusters
            .as_ref()
            .map(|c| self.design_clusters(c, all_rows, &position, n))
            .transpose()?;
        Ok(Parts {
            base,
            treatment,
            clusters,
            n,
        })
    }

    /// One side: its rows arranged as seeds × runs × examples. Errors on duplicate rows and on
    /// runs that miss examples.
    fn side(&self, rows: &[usize], position: &[u32], n: usize, example_codes: &[u32], where_: &str) -> Result<Side> {
        let table = self.table;
        let run_of = |r: usize| table.run.as_ref().and_then(|v| v[r]).unwrap_or(0);
        let mut index: HashMap<(i64, i64), usize> = HashMap::new();
        let mut runs: Vec<((i64, i64), Vec<u32>)> = Vec::new();
        let mut last: Option<((i64, i64), usize)> = None;
        for &r in rows {
            let key = (table.seed[r], run_of(r));
            let k = match last {
                Some((last_key, k)) if last_key == key => k,
                _ => *index.entry(key).or_insert_with(|| {
                    runs.push((key, vec![ABSENT; n]));
                    runs.len() - 1
                }),
            };
            last = Some((key, k));
            let slots = &mut runs[k].1;
            let e = position[self.examples.codes[r] as usize] as usize;
            if slots[e] != ABSENT {
                return Err(self.duplicate(slots[e] as usize, r, where_));
            }
            slots[e] = r as u32;
        }
        runs.sort_unstable_by_key(|(key, _)| *key);
        let mut seeds: Vec<Seed> = Vec::new();
        for ((seed, run), slots) in runs {
            let covered = slots.iter().filter(|&&s| s != ABSENT).count();
            if let Some(missing) = slots.iter().position(|&s| s == ABSENT) {
                return Err(input(format!(
                    "seed {seed}, run {run} of {where_} has {covered} of the {n} examples (missing example '{}'); all runs of one analysis must cover the same examples",
                    self.examples.names[example_codes[missing] as usize]
                )));
            }
            let numbers = |c: Option<&crate::results::Numbers>| {
                c.map(|c| slots.iter().map(|&r| c.get(r as usize).unwrap_or(f64::NAN)).collect())
            };
            let outcomes = Outcomes {
                label: numbers(table.label.as_ref()),
                prediction: numbers(table.prediction.as_ref()),
                score: table
                    .score
                    .as_ref()
                    .map(|s| slots.iter().map(|&r| s[r as usize].unwrap_or(f64::NAN)).collect()),
            };
            match seeds.last_mut() {
                Some(last) if last.id == seed => last.runs.push(outcomes),
                _ => seeds.push(Seed {
                    id: seed,
                    runs: vec![outcomes],
                }),
            }
        }
        Ok(Side { seeds })
    }

    fn duplicate(&self, first: usize, second: usize, where_: &str) -> mb_stats_files::error::Error {
        let table = self.table;
        let differ: Vec<&str> = [Key::Group, Key::Step, Key::Task, Key::Layer]
            .into_iter()
            .filter(|k| k.value(table, first) != k.value(table, second))
            .map(Key::name)
            .collect();
        let hint = match differ.is_empty() {
            true => "each (seed, run, example) must appear once".to_string(),
            false => format!(
                "the rows differ in {}; use {{by}} or a filter to separate them",
                differ.join(", ")
            ),
        };
        Error::named(format!(
            "duplicate rows for seed {}, run {}, example '{}' in {where_}: {hint}",
            table.seed[first],
            Key::Run.value(table, first).unwrap_or_default(),
            self.examples.names[self.examples.codes[first] as usize],
        ))
    }

    /// Dense cluster ids of the design's examples; an example must have one cluster.
    fn design_clusters(&self, clusters: &Codes, rows: &[usize], position: &[u32], n: usize) -> Result<Vec<u32>> {
        let mut of_example = vec![ABSENT; n];
        for &r in rows {
            let e = position[self.examples.codes[r] as usize] as usize;
            let c = clusters.codes[r];
            if of_example[e] != ABSENT && of_example[e] != c {
                return Err(input(format!(
                    "column cluster: example '{}' is in clusters '{}' and '{}'; an example belongs to one cluster",
                    self.examples.names[self.examples.codes[r] as usize],
                    clusters.names[of_example[e] as usize],
                    clusters.names[c as usize]
                )));
            }
            of_example[e] = c;
        }
        let distinct: BTreeSet<u32> = of_example.iter().copied().collect();
        let dense: BTreeMap<u32, u32> = distinct.into_iter().enumerate().map(|(i, c)| (c, i as u32)).collect();
        Ok(of_example.iter().map(|c| dense[c]).collect())
    }
}

/// Keeps the seeds present on both sides, in the same order; describes the dropped ones.
pub fn pair_seeds(base: Side, treatment: Side) -> (Side, Side, String) {
    let ids = |s: &Side| s.seeds.iter().map(|x| x.id).collect::<BTreeSet<_>>();
    let (b_ids, t_ids) = (ids(&base), ids(&treatment));
    let list = |s: BTreeSet<i64>| s.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    let base_only: BTreeSet<i64> = b_ids.difference(&t_ids).copied().collect();
    let treatment_only: BTreeSet<i64> = t_ids.difference(&b_ids).copied().collect();
    let mut notes = Vec::new();
    if !base_only.is_empty() {
        notes.push(format!("dropped base-only seeds: {}", list(base_only)));
    }
    if !treatment_only.is_empty() {
        notes.push(format!("dropped treatment-only seeds: {}", list(treatment_only)));
    }
    let keep = |s: Side, other: &BTreeSet<i64>| Side {
        seeds: s.seeds.into_iter().filter(|x| other.contains(&x.id)).collect(),
    };
    (keep(base, &t_ids), keep(treatment, &b_ids), notes.join("; "))
}
