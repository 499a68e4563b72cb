#!/usr/bin/env python3
"""Training speed of BERT-base: fine-tuning and continued masked-LM pretraining, mb-stats beside
transformers on the same device, in one run.

    python3 bench/train_speed.py --mb-stats target/release/mb-stats [--device cpu|cuda:0]
        [--dtype f32|bf16] [--steps 50] [--batch-size 32] [--max-length 128]

A BERT-base `BertForPreTraining` with random weights (torch seed 0) is saved to a temporary
folder with the quickstart's small vocabulary (the shapes, not the words, set the cost). Both
tools then train it for --steps optimiser steps of --batch-size inputs, dropout at the config's
0.1, AdamW with linear warmup and decay, clipping at 1:

- fine-tuning: sentences of the bundled sentiment data with a 2-class head
  (`kind = "fine-tune"`, one epoch over steps × batch sentences; transformers:
  `BertForSequenceClassification`, batches padded to their longest);
- continued pretraining: blocks of --max-length tokens, 15% masked (`kind = "pretrain"`;
  transformers: `BertForMaskedLM` with `DataCollatorForLanguageModeling`).

With --dtype bf16 our products run in bf16 with f32 master weights and transformers runs under
`torch.autocast(bfloat16)`. Both sides' steps per second are over the steps after the first two
(warm-up): ours from the run's step counter (each progress line gives the steps done and the
rate since training started, to three digits below 10 per second, hence the time of each line),
transformers' timed directly. Prints one
line per workload and tool, and the ratios; exit 1 with one line when a side fails.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ROOT / "data/quickstart/models/tiny-bert-original/vocab.txt"
SENTENCES = ROOT / "data/quickstart/sentiment/train.tsv"


def save_checkpoint(folder: Path) -> None:
    import torch
    from transformers import BertConfig, BertForPreTraining
    from transformers.utils import logging

    logging.disable_progress_bar()

    torch.manual_seed(0)
    config = BertConfig()
    BertForPreTraining(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text(VOCAB.read_text())
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 512}')


def sentences(n: int) -> list[str]:
    rows = SENTENCES.read_text().splitlines()[1:]
    texts = [r.split("\t")[0] for r in rows]
    return (texts * math.ceil(n / len(texts)))[:n]


def ours(binary: str, checkpoint: Path, work: Path, kind: str, args: argparse.Namespace) -> float:
    """Steps per second of `mb-stats run` for `kind`, from its step counter's last rate."""
    n = args.steps * args.batch_size
    data = work / f"{kind}.tsv"
    texts = sentences(n if kind == "fine-tune" else 40 * n)
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    if kind == "fine-tune":
        task = (
            f'[data]\ntrain = "{data}"\neval = "{data}"\ntext = "sentence"\nlabel = "label"\neval_size = 32\n\n'
            f'[task]\nkind = "fine-tune"\nlrs = [5e-5]\nruns = 1\nepochs = 1\nbatch_size = {args.batch_size}\n'
        )
        counter, per_step = r"sentences \(lr [^)]*\): (\d+)/\d+ \(\d+%\), ([0-9.]+)/s", args.batch_size
    else:
        task = (
            f'[data]\ncorpus = "{data}"\nheldout = 0.01\n\n'
            f'[task]\nkind = "pretrain"\nsteps = {args.steps}\nbatch_size = {args.batch_size}\nsave_every = 0\n'
        )
        counter, per_step = r"pretraining steps: (\d+)/\d+ \(\d+%\), ([0-9.]+)/s", 1
    experiment = work / f"{kind}.toml"
    experiment.write_text(
        f'[models]\nsuite = "local"\npath = "{checkpoint}"\nseeds = "0"\n\n{task}\n'
        f'[runtime]\ndevice = "{args.device}"\ndtype = "{args.dtype}"\nmax_length = {args.max_length}\n'
    )
    done = subprocess.run(
        [binary, "run", str(experiment), "--out", str(work / f"out-{kind}"), "--log-interval", "0.001"],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        sys.exit(f"mb-stats {kind} failed: {done.stderr.strip().splitlines()[-1]}")
    # Each counter line: items done and items per second since the start, so the time at which
    # they were done is items / rate. The rate over the steps after the first two, as theirs.
    lines = [(int(items), float(rate)) for items, rate in re.findall(counter, done.stderr) if float(rate) > 0]
    after_warmup = [(n, n / rate) for n, rate in lines if n >= 2 * per_step]
    if len(after_warmup) < 2:
        sys.exit(f"mb-stats {kind}: too few step counter lines in its log")
    (n0, t0), (n1, t1) = after_warmup[0], after_warmup[-1]
    return (n1 - n0) / (t1 - t0) / per_step


def theirs(checkpoint: Path, kind: str, args: argparse.Namespace) -> float:
    """Steps per second of the transformers loop for `kind`, after two warm-up steps."""
    import torch
    from transformers import (
        BertForMaskedLM,
        BertForSequenceClassification,
        BertTokenizerFast,
        DataCollatorForLanguageModeling,
        get_linear_schedule_with_warmup,
    )
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    device = torch.device("cuda" if args.device.startswith("cuda") else "cpu")
    tokenizer = BertTokenizerFast.from_pretrained(checkpoint)
    steps = args.steps + 2
    if kind == "fine-tune":
        model = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=2).to(device).train()
        texts = sentences(steps * args.batch_size)
        batches = []
        for s in range(steps):
            enc = tokenizer(texts[s * args.batch_size:(s + 1) * args.batch_size], padding=True, truncation=True,
                            max_length=args.max_length, return_tensors="pt")
            enc["labels"] = torch.tensor([i % 2 for i in range(len(enc["input_ids"]))])
            batches.append(enc)
    else:
        model = BertForMaskedLM.from_pretrained(checkpoint).to(device).train()
        ids = [i for t in sentences(40 * args.steps * args.batch_size) for i in tokenizer(t)["input_ids"]]
        blocks = [ids[k:k + args.max_length] for k in range(0, len(ids) - args.max_length + 1, args.max_length)]
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")
        batches = [collator([{"input_ids": b} for b in blocks[s * args.batch_size:(s + 1) * args.batch_size]])
                   for s in range(steps)]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=5e-5)
    schedule = get_linear_schedule_with_warmup(optimiser, math.ceil(0.1 * steps), steps)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    start = 0.0
    for s, batch in enumerate(batches):
        if s == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb-stats", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    args = p.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = work / "bert-base"
        save_checkpoint(checkpoint)
        for kind in ["fine-tune", "pretrain"]:
            results[kind] = (ours(args.mb_stats, checkpoint, work, kind, args), theirs(checkpoint, kind, args))
    print(f"BERT-base training, {args.steps} steps of {args.batch_size}, max length {args.max_length}, "
          f"{args.dtype} on {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for kind, (a, b) in results.items():
        print(f"{kind:<10} mb-stats {a:8.3f} steps/s   transformers {b:8.3f} steps/s   ratio {a / b:.2f}")
    print(json.dumps({k: {"mb_stats": a, "transformers": b, "ratio": a / b} for k, (a, b) in results.items()}))


if __name__ == "__main__":
    main()
