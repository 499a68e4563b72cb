//! The design of one analysis: one or two sides (procedures), each a list of pretraining seeds
//! with their runs, over one shared, ordered set of examples grouped into resampling units.
//!
//! A [`Design`] checks its invariants once, at construction (every run covers every example,
//! paired sides list the same seeds in the same order, every unit holds an example), so the
//! resampler and the engine never re-check them.

use std::fmt;

/// One run's per-example outcomes, aligned on the design's example order.
/// A column the results table does not have is `None`.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    /// Gold label or target.
    pub label: Option<Vec<f64>>,
    /// Predicted class or value.
    pub prediction: Option<Vec<f64>>,
    /// Per-example score (positive-class probability or a pointwise metric).
    pub score: Option<Vec<f64>>,
}

impl Outcomes {
    fn lengths(&self) -> impl Iterator<Item = usize> + '_ {
        [&self.label, &self.prediction, &self.score]
            .into_iter()
            .flatten()
            .map(Vec::len)
    }

    fn shape(&self) -> [bool; 3] {
        [self.label.is_some(), self.prediction.is_some(), self.score.is_some()]
    }
}

/// One pretraining seed: the unit resampled at the seed level. Its runs are averaged, never
/// resampled.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The seed's value in the results table.
    pub id: i64,
    /// Repeats within the seed (fine-tuning or probe seeds).
    pub runs: Vec<Outcomes>,
}

/// One procedure (arm) of an analysis: its seeds.
#[derive(Clone, Debug)]
pub struct Side {
    /// The seeds of this procedure, in a fixed order.
    pub seeds: Vec<Seed>,
}

impl Side {
    /// Total number of runs over all seeds.
    pub fn n_runs(&self) -> usize {
        self.seeds.iter().map(|s| s.runs.len()).sum()
    }
}

/// Whether the two sides of a comparison share the seed draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// The same seed draw on both sides (the sides list the same seeds).
    Paired,
    /// Independent seed draws per side; examples are still drawn once for both.
    Unpaired,
}

impl fmt::Display for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pairing::Paired => "paired",
            Pairing::Unpaired => "unpaired",
        })
    }
}

/// A violated design invariant (a programming or input-preparation error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesignError(pub String);

impl fmt::Display for DesignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DesignError {}

/// A validated design: sides, pairing and the example → resampling-unit map.
#[derive(Clone, Debug)]
pub struct Design {
    base: Side,
    treatment: Option<Side>,
    pairing: Pairing,
    n_examples: usize,
    unit_of_example: Vec<u32>,
    n_units: usize,
}

impl Design {
    /// A one-procedure design. `clusters` maps each example to its cluster (dense ids from 0);
    /// `None` makes every example its own resampling unit.
    pub fn single(side: Side, clusters: Option<Vec<u32>>) -> Result<Self, DesignError> {
        Self::build(side, None, Pairing::Unpaired, clusters)
    }

    /// A comparison of a baseline and a treatment over the same examples.
    pub fn compare(
        base: Side,
        treatment: Side,
        pairing: Pairing,
        clusters: Option<Vec<u32>>,
    ) -> Result<Self, DesignError> {
        Self::build(base, Some(treatment), pairing, clusters)
    }

    fn build(
        base: Side,
        treatment: Option<Side>,
        pairing: Pairing,
        clusters: Option<Vec<u32>>,
    ) -> Result<Self, DesignError> {
        let first = base
            .seeds
            .first()
            .and_then(|s| s.runs.first())
            .ok_or_else(|| DesignError("the base side has no runs".into()))?;
        let n_examples = first.lengths().next().unwrap_or(0);
        let shape = first.shape();
        if n_examples == 0 {
            return Err(DesignError("the design has no examples".into()));
        }
        for (name, side) in std::iter::once(("base", &base)).chain(treatment.iter().map(|t| ("treatment", t))) {
            if side.seeds.is_empty() {
                return Err(DesignError(format!("the {name} side has no seeds")));
            }
            for seed in &side.seeds {
                if seed.runs.is_empty() {
                    return Err(DesignError(format!("seed {} of the {name} side has no runs", seed.id)));
                }
                for run in &seed.runs {
                    if run.shape() != shape || run.lengths().any(|n| n != n_examples) {
                        return Err(DesignError(format!(
                            "a run of seed {} ({name}) does not cover the same {n_examples} examples with the same columns",
                            seed.id
                        )));
                    }
                }
            }
        }
        if pairing == Pairing::Paired {
            let t = treatment
                .as_ref()
                .ok_or_else(|| DesignError("pairing needs two sides".into()))?;
            let ids = |s: &Side| s.seeds.iter().map(|x| x.id).collect::<Vec<_>>();
            if ids(&base) != ids(t) {
                return Err(DesignError(
                    "paired sides must list the same seeds in the same order".into(),
                ));
            }
        }
        let (unit_of_example, n_units) = match clusters {
            None => ((0..n_examples as u32).collect(), n_examples),
            Some(c) => {
                if c.len() != n_examples {
                    return Err(DesignError(format!(
                        "{} cluster ids for {n_examples} examples",
                        c.len()
                    )));
                }
                let n_units = c.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
                let mut seen = vec![false; n_units];
                c.iter().for_each(|&u| seen[u as usize] = true);
                if seen.contains(&false) {
                    return Err(DesignError("cluster ids must be dense (0..n_clusters)".into()));
                }
                (c, n_units)
            }
        };
        Ok(Self {
            base,
            treatment,
            pairing,
            n_examples,
            unit_of_example,
            n_units,
        })
    }

    /// The baseline side (the only side of a one-procedure design).
    pub fn base(&self) -> &Side {
        &self.base
    }

    /// The treatment side of a comparison.
    pub fn treatment(&self) -> Option<&Side> {
        self.treatment.as_ref()
    }

    /// Paired or unpaired seed draws (always `Unpaired` for one procedure).
    pub fn pairing(&self) -> Pairing {
        self.pairing
    }

    /// Number of examples every run covers.
    pub fn n_examples(&self) -> usize {
        self.n_examples
    }

    /// Number of resampling units: clusters when given, else examples.
    pub fn n_units(&self) -> usize {
        self.n_units
    }

    /// The resampling unit of each example.
    pub fn unit_of_example(&self) -> &[u32] {
        &self.unit_of_example
    }
}
