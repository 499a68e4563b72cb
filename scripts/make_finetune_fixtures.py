#!/usr/bin/env python3
"""Reference fine-tuning runs of transformers for the fine-tuning parity tests.

Run from the repository root (needs torch and transformers; see the project's ignored .venv):

    .venv/bin/python scripts/make_finetune_fixtures.py

It (re)writes tests/fixtures/finetune/reference.json from the tiny BERT checkpoint
tests/fixtures/bert/pretraining-bin (2 layers, width 48, gelu, pooler, dropout 0.1 in its
config) and a toy sentiment task over its vocabulary (a sentence is positive when it holds
"good" or "great", negative when it holds "zero" or "bell"):

    parity        BertForSequenceClassification, dropout off, 30 AdamW steps of 8 sentences in
                  a recorded order (lr 5e-4, weight decay 0.01 except biases and LayerNorm,
                  linear warmup 10% then decay, gradient clipping at 1.0): the initial head,
                  the token ids, the loss of every step and the final eval logits; for a
                  classification head (2 classes) and a regression head (target: the number of
                  positive words).
    dropout       the same recipe with the config's dropout (0.1), 8 epochs of 256 sentences,
                  batch 16, lr 1e-3, for fine-tuning seeds 0-4: the eval accuracy of each and
                  its mean loss over the first and the last 16 steps.

Everything is deterministic (fixed torch seeds, CPU); rerunning with the same torch and
transformers versions gives the same numbers.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
import transformers
from transformers import BertForSequenceClassification, get_linear_schedule_with_warmup

try:  # transformers >= 5: BertTokenizer is the Rust-backed one, the python one is "Legacy"
    from transformers import BertTokenizerLegacy as SlowBertTokenizer
except ImportError:  # transformers 4.x
    from transformers import BertTokenizer as SlowBertTokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "bert" / "pretraining-bin"
OUT = ROOT / "tests" / "fixtures" / "finetune"

NEUTRAL = (
    "the cat sat on mat was it movie film play player text hello world wait what don know "
    "cafe naive soft ok and in we long very once upon time there were three bears who lived "
    "house forest they all day night"
).split()


def toy(n: int, seed: int) -> tuple[list[str], list[int], list[float]]:
    """Sentences of 4-9 neutral words with one to three cue words; labels and regression targets."""
    rng = random.Random(seed)
    texts, labels, targets = [], [], []
    for _ in range(n):
        label = rng.randrange(2)
        words = [rng.choice(NEUTRAL) for _ in range(rng.randrange(4, 10))]
        cues = rng.randrange(1, 4)
        for _ in range(cues):
            words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great"] if label else ["zero", "bell"]))
        texts.append(" ".join(words))
        labels.append(label)
        targets.append(float(cues if label else 0))
    return texts, labels, targets


def optimiser(model, lr: float, total: int):
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    return opt, get_linear_schedule_with_warmup(opt, math.ceil(0.1 * total), total)


def encode(tokenizer, texts: list[str]) -> dict:
    return tokenizer(texts, padding=True, truncation=True, max_length=24, return_tensors="pt")


def step(model, opt, sched, batch, target) -> float:
    model.train()
    loss = model(**batch, labels=target).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    return loss.item()


def parity(tokenizer, regression: bool, train, evaluation) -> dict:
    texts, labels, targets = train
    torch.manual_seed(11)
    model = BertForSequenceClassification.from_pretrained(
        MODEL,
        num_labels=1 if regression else 2,
        problem_type="regression" if regression else "single_label_classification",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    head = {"weight": model.classifier.weight.tolist(), "bias": model.classifier.bias.tolist()}
    order = list(range(len(texts)))
    random.Random(5).shuffle(order)
    batches = [order[(i * 8) % len(order):(i * 8) % len(order) + 8] for i in range(30)]
    opt, sched = optimiser(model, 5e-4, len(batches))
    losses = []
    for rows in batches:
        target = torch.tensor([targets[i] for i in rows]) if regression else torch.tensor([labels[i] for i in rows])
        losses.append(step(model, opt, sched, encode(tokenizer, [texts[i] for i in rows]), target))
    model.eval()
    with torch.no_grad():
        logits = model(**encode(tokenizer, evaluation[0])).logits
    return {"head": head, "batches": batches, "losses": losses, "eval_logits": logits.tolist()}


EPOCHS = 8


def dropout_run(tokenizer, train, evaluation, seed: int) -> dict:
    texts, labels, _ = train
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2)
    assert model.config.hidden_dropout_prob == 0.1
    generator = torch.Generator().manual_seed(seed)
    batches = [perm[i:i + 16].tolist() for _ in range(EPOCHS) for perm in [torch.randperm(len(texts), generator=generator)]
               for i in range(0, len(texts), 16)]
    opt, sched = optimiser(model, 1e-3, len(batches))
    losses = [step(model, opt, sched, encode(tokenizer, [texts[i] for i in rows]), torch.tensor([labels[i] for i in rows]))
              for rows in batches]
    model.eval()
    with torch.no_grad():
        predicted = model(**encode(tokenizer, evaluation[0])).logits.argmax(-1).tolist()
    accuracy = sum(p == g for p, g in zip(predicted, evaluation[1])) / len(predicted)
    return {"accuracy": accuracy, "first_losses": sum(losses[:16]) / 16, "last_losses": sum(losses[-16:]) / 16}


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tokenizer = SlowBertTokenizer.from_pretrained(MODEL)
    train, evaluation = toy(256, 1), toy(100, 2)
    small = tuple(column[:80] for column in train)
    ids = lambda texts: [tokenizer(t, truncation=True, max_length=24)["input_ids"] for t in texts]
    reference = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "train": {"texts": train[0], "labels": train[1], "targets": train[2], "ids": ids(train[0])},
        "eval": {"texts": evaluation[0], "labels": evaluation[1], "targets": evaluation[2], "ids": ids(evaluation[0])},
        "parity": {
            "settings": {"lr": 5e-4, "batch": 8, "steps": 30, "warmup": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0},
            "classification": parity(tokenizer, False, small, evaluation),
            "regression": parity(tokenizer, True, small, evaluation),
        },
        "dropout": {
            "settings": {"lr": 1e-3, "batch": 16, "epochs": EPOCHS, "warmup": 0.1, "train": 256},
            "runs": [dropout_run(tokenizer, train, evaluation, seed) for seed in range(5)],
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reference.json").write_text(json.dumps(reference) + "\n")
    print("wrote", OUT / "reference.json", "dropout runs", reference["dropout"]["runs"])


if __name__ == "__main__":
    main()
