#!/usr/bin/env python3
"""The bundled CrowS-Pairs sample and the references of the `crows-pairs` parity tests. Run from
the repository root (torch + transformers in the ignored .venv):

    .venv/bin/python scripts/make_bias_fixtures.py

It (re)writes:

    data/bias/crows-pairs/crows_pairs_sample.csv   the first 20 pairs of each of the 9 bias
                                        types (../shared/data/crows-pairs, CC BY-SA 4.0) whose
                                        sentences fit in 64 word-pieces of the tiny quickstart
                                        vocabulary, with columns id, sent_more, sent_less,
                                        stereo_antistereo, bias_type
    tests/fixtures/bias/difflib.json    token-id sequence pairs (random, and sequences of 200 or
                                        more items, where difflib's "popular" rule applies) with
                                        the positions Python's difflib.SequenceMatcher matches
    tests/fixtures/bias/crows.json      per tiny model: each sample pair's two scores
    data/bias/winogender/templates-quickstart.tsv   the Winogender templates (MIT) whose every
                                        filled sentence fits in 64 word-pieces of the tiny
                                        vocabulary (the quickstart's models have 64 positions)
    tests/fixtures/bias/winogender.json per tiny model: log P(female, male, neutral form) of
                                        each context of templates-quickstart.tsv

The scores follow the authors' metric.py (github.com/nyu-mll/crows-pairs), computed here with
transformers' BertForMaskedLM (f32, eval mode), not by our code: both sentences tokenized (with
[CLS] and [SEP]); the shared tokens are difflib.SequenceMatcher(None, ids1, ids2)'s "equal"
opcodes; for each shared token but the first and last ([CLS], [SEP]), that token alone is
masked and the log-softmax of the MLM logits at it, at its true id, is added (in f64).

Winogender, masked-LM form: each template filled with its occupation and with its participant or
"someone", the pronoun placeholder replaced by each form (she/he/they, her/him/them,
her/his/their); the form's pieces are the tokens of the word after the text before it
(`word_ids()`); log P(form) = the sum over its pieces, left to right, of the log-softmax at the
piece with that piece and the later ones masked (one piece: the plain masked log-probability).
"""

from __future__ import annotations

import csv
import difflib
import json
import random
from collections import Counter
from pathlib import Path

import torch
from transformers import BertForMaskedLM, BertTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "data/quickstart/models"
SAMPLE = ROOT / "data/bias/crows-pairs/crows_pairs_sample.csv"
FIXTURES = ROOT / "tests/fixtures/bias"
PER_TYPE = 20
MAX_PIECES = 64


def template(ids1: list[int], ids2: list[int]) -> tuple[list[int], list[int]]:
    """metric.py's get_span: the positions of the "equal" opcodes."""
    matcher = difflib.SequenceMatcher(None, [str(x) for x in ids1], [str(x) for x in ids2])
    t1, t2 = [], []
    for op in matcher.get_opcodes():
        if op[0] == "equal":
            t1 += list(range(op[1], op[2]))
            t2 += list(range(op[3], op[4]))
    return t1, t2


def write_sample(tokenizer: BertTokenizerFast) -> list[dict]:
    rows = list(csv.DictReader(open(ROOT / "../shared/data/crows-pairs/crows_pairs_anonymized.csv", newline="")))
    count: Counter = Counter()
    keep = []
    for row in rows:
        fits = all(len(tokenizer(row[c])["input_ids"]) <= MAX_PIECES for c in ("sent_more", "sent_less"))
        if fits and count[row["bias_type"]] < PER_TYPE:
            count[row["bias_type"]] += 1
            keep.append(row)
    with open(SAMPLE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "sent_more", "sent_less", "stereo_antistereo", "bias_type"])
        for r in keep:
            w.writerow([r[""], r["sent_more"], r["sent_less"], r["stereo_antistereo"], r["bias_type"]])
    return keep


def difflib_cases() -> list[dict]:
    rng = random.Random(0)
    cases = []
    for n in range(300):
        alphabet = rng.choice([2, 3, 5, 20])
        la, lb = rng.randint(0, 30), rng.randint(0, 30)
        if n % 10 == 0:  # long sequences: difflib's popular-element rule
            la, lb = rng.randint(150, 260), rng.randint(200, 260)
        a = [rng.randrange(alphabet) for _ in range(la)]
        b = [rng.randrange(alphabet) for _ in range(lb)] if n % 3 else [x if rng.random() < 0.8 else alphabet for x in a]
        t1, t2 = template(a, b)
        cases.append({"a": a, "b": b, "a_positions": t1, "b_positions": t2})
    return cases


@torch.no_grad()
def scores(model: BertForMaskedLM, tokenizer: BertTokenizerFast, pairs: list[dict]) -> list[list[float]]:
    out = []
    for row in pairs:
        ids = [tokenizer(row[c])["input_ids"] for c in ("sent_more", "sent_less")]
        t = template(*ids)
        pair = []
        for sentence, positions in zip(ids, t):
            total = 0.0
            for p in positions[1:-1]:
                masked = list(sentence)
                masked[p] = tokenizer.mask_token_id
                logits = model(input_ids=torch.tensor([masked])).logits[0, p]
                total += torch.log_softmax(logits.double(), dim=-1)[sentence[p]].item()
            pair.append(total)
        out.append(pair)
    return out


WINOGENDER = ROOT / "data/bias/winogender"
CASES = {"$NOM_PRONOUN": ["she", "he", "they"], "$ACC_PRONOUN": ["her", "him", "them"], "$POSS_PRONOUN": ["her", "his", "their"]}


def winogender_contexts() -> list[dict]:
    rows = list(csv.DictReader(open(WINOGENDER / "templates.tsv", newline=""), delimiter="\t"))
    contexts = []
    for row in rows:
        (placeholder,) = [p for p in CASES if p in row["sentence"]]
        for participant in [row["other-participant(1)"], "someone"]:
            text = row["sentence"].replace("$OCCUPATION", row["occupation(0)"]).replace("$PARTICIPANT", participant)
            before, after = text.split(placeholder)
            contexts.append({
                "row": row,
                "id": f"{row['occupation(0)']}.{participant}.{row['answer']}",
                "before": before,
                "after": after,
                "forms": CASES[placeholder],
            })
    return contexts


def write_short_templates(tokenizer: BertTokenizerFast) -> list[dict]:
    contexts = winogender_contexts()
    too_long = {
        id(c["row"]) for c in contexts
        if any(len(tokenizer(c["before"] + f + c["after"])["input_ids"]) > MAX_PIECES for f in c["forms"])
    }
    kept = [c for c in contexts if id(c["row"]) not in too_long]
    rows = []
    for c in kept:
        if not rows or rows[-1] is not c["row"]:
            rows.append(c["row"])
    with open(WINOGENDER / "templates-quickstart.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["occupation(0)", "other-participant(1)", "answer", "sentence"])
        for r in rows:
            w.writerow([r["occupation(0)"], r["other-participant(1)"], r["answer"], r["sentence"]])
    return kept


@torch.no_grad()
def form_log_probs(model: BertForMaskedLM, tokenizer: BertTokenizerFast, contexts: list[dict]) -> dict:
    out = {}
    for c in contexts:
        before = tokenizer(c["before"].rstrip())
        word = max([w for w in before.word_ids() if w is not None], default=-1) + 1
        values = []
        for form in c["forms"]:
            enc = tokenizer(c["before"] + form + c["after"])
            ids, words = enc["input_ids"], enc.word_ids()
            positions = [i for i, w in enumerate(words) if w == word]
            total = 0.0
            for r, p in enumerate(positions):
                masked = list(ids)
                for q in positions[r:]:
                    masked[q] = tokenizer.mask_token_id
                logits = model(input_ids=torch.tensor([masked])).logits[0, p]
                total += torch.log_softmax(logits.double(), dim=-1)[ids[p]].item()
            values.append(total)
        out[c["id"]] = values
    return out


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast.from_pretrained(MODELS / "tiny-bert-original")
    pairs = write_sample(tokenizer)
    (FIXTURES / "difflib.json").write_text(json.dumps(difflib_cases()) + "\n")
    contexts = write_short_templates(tokenizer)
    crows, winogender = {}, {}
    for name in ["tiny-bert-original", "tiny-multiberts-seed_0"]:
        model = BertForMaskedLM.from_pretrained(MODELS / name).eval()
        crows[name] = scores(model, tokenizer, pairs)
        winogender[name] = form_log_probs(model, tokenizer, contexts)
    (FIXTURES / "crows.json").write_text(json.dumps({"ids": [int(r[""]) for r in pairs], "scores": crows}) + "\n")
    (FIXTURES / "winogender.json").write_text(json.dumps(winogender) + "\n")
    print(f"{len(pairs)} pairs, {len(difflib_cases())} difflib cases, {len(contexts)} Winogender contexts")


if __name__ == "__main__":
    main()
