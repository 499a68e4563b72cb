#!/usr/bin/env python3
"""Import throughput of ``mb-stats import lm-eval``, beside the Python a user would otherwise write.

Writes a PolyPythias-shaped suite in the harness's v0.4.3+ format at realistic record sizes
(5-shot multiple-choice prompts repeated per choice, as the harness logs them: a few KB per
record), then alternates, ``--repeats`` times:

- ``mb-stats import lm-eval SUITE -o OUT.parquet`` (whole process: discovery, parsing, the
  checks against the aggregates and across seeds, writing Parquet);
- the Python baseline: ``json.loads`` of every line, the same fields kept (doc_id, the argmax of
  the log-likelihoods, the target, acc, acc_norm), a pandas DataFrame written to Parquet.

Prints MB/s of JSONL for each and the median ratio, then the peak memory (max RSS) of the import
of the whole suite and of a tenth of it: streaming means the two are close.

Usage: python3 bench/lm_eval_import.py [--files 60] [--docs 2000] [--repeats 3] [--bin PATH]
Needs pandas and pyarrow for the baseline (the test venv has them).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shot(rng, i):
    words = " ".join(rng.choice(["the", "a", "river", "stone", "light", "energy", "plant", "cell"]) for _ in range(60))
    return f"Question: {words}?\nAnswer: {rng.choice(['heat', 'water', 'light', 'soil'])}\n\n"


def write_suite(root, n_files, n_docs):
    """n_files samples files (seeds x steps x one task) of n_docs records, with results files."""
    rng = random.Random(0)
    fewshot = "".join(shot(rng, i) for i in range(5))
    files_per_seed = max(1, n_files // 10)
    made = 0
    for seed in range(10):
        folder = root / f"EleutherAI__pythia-160m-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(files_per_seed):
            if made == n_files:
                return
            step = 1000 * (k + 1)
            date = f"2024-06-01T10-{k:02d}-00.{seed:06d}"
            accs, lines = [], []
            for doc_id in range(n_docs):
                r = random.Random(f"{seed}-{step}-{doc_id}")
                choices = ["heat", "water", "light", "soil"]
                doc = {"id": f"Mercury_{doc_id}", "question": f"Question {doc_id}: which is it?",
                       "choices": {"text": choices, "label": list("ABCD")}, "answerKey": "ABCD"[doc_id % 4]}
                prompt = fewshot + f"Question: {doc['question']}\nAnswer:"
                lls = [-r.uniform(1, 6) for _ in choices]
                gold = doc_id % 4
                acc = float(max(range(4), key=lambda i: lls[i]) == gold)
                accs.append(acc)
                record = {
                    "doc_id": doc_id, "doc": doc, "target": str(gold),
                    "arguments": {f"gen_args_{i}": {"arg_0": prompt, "arg_1": " " + c} for i, c in enumerate(choices)},
                    "resps": [[[str(ll), "False"]] for ll in lls],
                    "filtered_resps": [[str(ll), "False"] for ll in lls],
                    "filter": "none", "metrics": ["acc", "acc_norm"],
                    "doc_hash": f"{doc_id:064x}", "prompt_hash": f"{doc_id + 1:064x}", "target_hash": f"{gold:064x}",
                    "acc": acc, "acc_norm": acc,
                }
                lines.append(json.dumps(record, ensure_ascii=False))
            (folder / f"samples_arc_easy_{date}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            results = {
                "results": {"arc_easy": {"alias": "arc_easy", "acc,none": sum(accs) / len(accs),
                                         "acc_norm,none": sum(accs) / len(accs)}},
                "configs": {"arc_easy": {"metric_list": [{"metric": "acc", "aggregation": "mean"},
                                                         {"metric": "acc_norm", "aggregation": "mean"}]}},
                "config": {"model": "hf", "model_args": f"pretrained=EleutherAI/pythia-160m-seed{seed},revision=step{step}"},
                "model_name": f"EleutherAI/pythia-160m-seed{seed}",
            }
            (folder / f"results_{date}.json").write_text(json.dumps(results), encoding="utf-8")
            made += 1


def python_baseline(root, out):
    import pandas as pd

    rows = []
    for path in sorted(root.rglob("samples_*.jsonl")):
        seed = int(path.parent.name.rsplit("seed", 1)[1])
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                lls = [float(c[0]) for c in r["filtered_resps"]]
                rows.append((seed, r["doc_id"], int(r["target"]), max(range(len(lls)), key=lls.__getitem__),
                             r["acc"], r["acc_norm"]))
    pd.DataFrame(rows, columns=["seed", "example", "label", "prediction", "score", "acc_norm"]).to_parquet(out)


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def peak_kib(command):
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], check=True, capture_output=True, text=True)
    return int(done.stderr.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "mb-stats"
    parser.add_argument("--bin", default=str(default_bin))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lm-eval-bench-"))
    try:
        suite, small = work / "suite", work / "small"
        write_suite(suite, args.files, args.docs)
        write_suite(small, max(1, args.files // 10), args.docs)
        size = sum(p.stat().st_size for p in suite.rglob("samples_*.jsonl"))
        print(f"suite: {args.files} samples files x {args.docs} records, {size / 1e6:.0f} MB of JSONL")
        ours, theirs = [], []
        mb_stats = [args.bin, "import", "lm-eval", str(suite), "-o", str(work / "ours.parquet")]
        baseline = [sys.executable, __file__, "--baseline", str(suite), str(work / "theirs.parquet")]
        for _ in range(args.repeats):
            ours.append(timed(mb_stats))
            theirs.append(timed(baseline))
            (work / "ours.parquet").unlink()
        ratios = [t / o for o, t in zip(ours, theirs)]
        print(f"mb-stats import lm-eval: median {statistics.median(ours):.2f} s = {size / 1e6 / statistics.median(ours):.0f} MB/s")
        print(f"python json.loads + pandas: median {statistics.median(theirs):.2f} s = "
              f"{size / 1e6 / statistics.median(theirs):.0f} MB/s")
        print(f"ratio (same run, alternated): median {statistics.median(ratios):.1f}x, "
              f"each {', '.join(f'{r:.1f}x' for r in ratios)}")
        whole = peak_kib(mb_stats)
        tenth = peak_kib([args.bin, "import", "lm-eval", str(small), "-o", str(work / "small.parquet")])
        print(f"peak memory (max RSS): {whole / 1024:.0f} MiB for {args.files} files, "
              f"{tenth / 1024:.0f} MiB for {max(1, args.files // 10)} files")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        python_baseline(Path(sys.argv[2]), sys.argv[3])
    else:
        main()
