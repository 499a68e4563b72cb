#!/usr/bin/env python3
"""The reference of continued masked-LM pretraining's parity test: 30 optimiser steps of
transformers' BertForMaskedLM on masked batches it makes itself, with their losses. Run from the
repository root (torch + transformers in the ignored .venv):

    .venv/bin/python scripts/make_pretrain_fixtures.py

It (re)writes tests/fixtures/pretrain/parity.json: the settings, and per step the batch's input
ids (after masking), its labels (-100 where nothing is predicted) and the loss before the update.

The recipe is `run_mlm.py`'s: the first 400 sentences of the quickstart's sentiment data
tokenized with [CLS] and [SEP], concatenated and cut into blocks of 32 tokens (`group_texts`),
masked by DataCollatorForLanguageModeling (15%; 80% [MASK], 10% random, 10% kept; torch seed 0),
4 blocks per step; AdamW (β 0.9/0.999, ε 1e-8, weight decay 0.01 except biases and LayerNorm
weights), linear warmup over ceil(10% of 30) steps then linear decay, gradients clipped to global
norm 1.0; dropout off (so both sides compute the same function). The model is the quickstart's
tiny-multiberts-seed_0, whose MLM decoder is tied to the word embeddings.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch
from transformers import BertForMaskedLM, BertTokenizerFast, DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "data/quickstart/models/tiny-multiberts-seed_0"
OUT = ROOT / "tests/fixtures/pretrain/parity.json"
STEPS, BATCH, LENGTH, LR = 30, 4, 32, 1e-3


def main() -> None:
    torch.manual_seed(0)
    tokenizer = BertTokenizerFast.from_pretrained(MODEL)
    rows = list(csv.DictReader(open(ROOT / "data/quickstart/sentiment/train.tsv", newline=""), delimiter="\t"))
    texts = [r["sentence"] for r in rows[:400]]
    ids = [i for t in texts for i in tokenizer(t)["input_ids"]]
    blocks = [ids[k : k + LENGTH] for k in range(0, len(ids) - LENGTH + 1, LENGTH)]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")
    model = BertForMaskedLM.from_pretrained(MODEL, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.999), eps=1e-8,
    )
    schedule = get_linear_schedule_with_warmup(optimiser, math.ceil(0.1 * STEPS), STEPS)
    steps = []
    for step in range(STEPS):
        batch = collator([{"input_ids": b} for b in blocks[step * BATCH : (step + 1) * BATCH]])
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        steps.append({
            "input_ids": batch["input_ids"].tolist(),
            "labels": batch["labels"].tolist(),
            "loss": loss.item(),
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    settings = {"lr": LR, "warmup": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0, "steps": STEPS}
    OUT.write_text(json.dumps({"settings": settings, "steps": steps}) + "\n")
    print(f"{STEPS} steps, loss {steps[0]['loss']:.4f} -> {steps[-1]['loss']:.4f}, {len(blocks)} blocks")


if __name__ == "__main__":
    main()
