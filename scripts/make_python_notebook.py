"""Builds and executes notebooks-export/python/coref.ipynb: the paper's coreference analysis
from Python with mb_stats on the bundled demo data (load, bootstrap, per-seed view, a plot, the
drop-in for the original library).

    python scripts/make_python_notebook.py   # needs mb_stats, nbclient, ipykernel, matplotlib
"""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks-export" / "python" / "coref.ipynb"

CELLS = [
    ("md", """# Does counterfactual data augmentation reduce gender bias for the procedure, or for one checkpoint?

The MultiBERTs paper's coreference case study (Sellam et al., ICLR 2022, section 5) from Python with
`mb_stats`, on the bundled demo data (`data/demo-results.parquet`: a base and a CDA arm, 10 seeds
x 2 runs x 120 Winogender-like examples in 20 clusters). Every number below is the CLI's number
for the same table and options (`mb-stats bootstrap ... --paired`), bit for bit."""),
    ("code", """import matplotlib.pyplot as plt
import numpy as np
import mb_stats

results = mb_stats.read_results("../../data/demo-results.parquet")
print(results.shape)
results.head()"""),
    ("code", """results.groupby("group").agg(seeds=("seed", "nunique"), runs=("run", "nunique"), examples=("example", "nunique"))"""),
    ("md", """## The Multi-Bootstrap: seeds and examples (clusters) resampled jointly, paired on seeds"""),
    ("code", """summary = mb_stats.bootstrap(results, base={"group": "base"}, treatment={"group": "cda"}, paired=True,
                            nboot=2000, rng_seed=0)
summary[["group", "quantity", "estimate", "low", "high", "p_value", "n_seeds", "n_runs", "n_examples", "n_clusters"]]"""),
    ("code", """print(summary.attrs["report"])"""),
    ("md", """## Artifact or procedure: each seed's own conclusion beside the procedure's"""),
    ("code", """per_seed = mb_stats.seeds(results, base="group=base", treatment="group=cda", paired=True, nboot=2000)
seeds = per_seed[per_seed.kind == "seed"]
seeds[["seed", "estimate", "low", "high", "p_value", "conclusion"]]"""),
    ("code", """procedure = summary[summary.quantity == "delta"].iloc[0]
fig, ax = plt.subplots(figsize=(6, 3.6))
y = np.arange(len(seeds))
ax.errorbar(seeds.estimate, y, xerr=[seeds.estimate - seeds.low, seeds.high - seeds.estimate], fmt="o", color="tab:blue",
            label="one seed (examples resampled)")
ax.errorbar([procedure.estimate], [len(seeds) + 0.8], xerr=[[procedure.estimate - procedure.low], [procedure.high - procedure.estimate]],
            fmt="D", color="black", label="procedure (Multi-Bootstrap)")
ax.axvline(0, color="grey", lw=0.8)
ax.set_yticks(list(y) + [len(seeds) + 0.8], [f"seed {s}" for s in seeds.seed] + ["all seeds"])
ax.set_xlabel("accuracy: CDA - base (95% intervals)")
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()"""),
    ("md", """Seed 9 alone would report a significant gain, and seed 8's interval lies entirely below
zero; over the procedure the interval covers zero. A single checkpoint does not settle the
question."""),
    ("md", """## The same study through the original library's interface (drop-in)

A MultiBERTs notebook switches by changing `from language.multiberts import multibootstrap` to the
import below; `accuracy_score` is recognised and runs on the Rust engine."""),
    ("code", """from sklearn.metrics import accuracy_score
from mb_stats import multibootstrap

wide = results.pivot_table(index=["group", "seed", "run"], columns="example", values="prediction").reset_index()
run_info = wide[["seed"]].assign(intervention=wide.group == "cda")
preds = wide.drop(columns=["group", "seed", "run"]).to_numpy()
labels = results.drop_duplicates("example").sort_values("example").label.to_numpy()

samples = multibootstrap.multibootstrap(run_info, preds, labels, accuracy_score, paired_seeds=True, nboot=2000, rng=0)
stats = multibootstrap.report_ci(samples, c=0.95)"""),
    ("md", """The drop-in does what the original does: single examples resampled, percentile intervals
(and its own random numbers, so it agrees with the original within Monte-Carlo error). The
`mb_stats.bootstrap` call above resamples the table's clusters (its `cluster` column) and
calibrates the interval to the number of seeds, so the two intervals differ; pass
`ignore_clusters=True, interval="percentile"` to ask it the original's question."""),
]


def main():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text) for kind, text in CELLS
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(OUT.parent)}}).execute()
    nbformat.write(notebook, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
