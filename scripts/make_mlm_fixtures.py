#!/usr/bin/env python3
"""Masked-LM reference scores for the minimal-pairs and cloze parity tests, and the bundled
BLiMP sample. Run from the repository root (torch + transformers in the ignored .venv):

    .venv/bin/python scripts/make_mlm_fixtures.py

It (re)writes:

    data/quickstart/blimp/<UID>.jsonl   the bundled BLiMP sample: the first 3 pairs of each of
                                        the 67 paradigms (../shared/data/blimp) whose sentences
                                        fit in 64 word-pieces of the tiny quickstart vocabulary
    tests/fixtures/mlm/cloze.tsv        cloze prompts made from the sample's good sentences
    tests/fixtures/mlm/reference.json   per model: the PLL of every sample sentence (of the pairs
                                        that fit its positions) under both scorings, and the
                                        cloze scores of each prompt that fits (its `row`)

The scores are computed here from their definitions with transformers' BertForMaskedLM (f32,
eval mode), not by our code:

- PLL, `pll` (Salazar et al., 2020): for each token the tokenizer did not add ([CLS], [SEP]),
  mask it alone and take log-softmax of the MLM logits at it, at the true id; sum over tokens
  (in f64).
- PLL, `pll-word-l2r` (Kauf & Ivanova, 2023): the same, but when scoring a token also mask the
  later tokens of the same word (`word_ids()` of the fast tokenizer).
- cloze: log-softmax at the prompt's one [MASK]: the gold id's log-probability, the arg-max id,
  and each candidate's log-probability.

When minicons is importable (0.3.39 needs `pip install --no-deps minicons wonderwords
accelerate pillow pandas`, and a shim for transformers 5), its MaskedLMScorer (PLL_metric
"original" / "within_word_l2r", sum reduction) is run on the same sentences and must agree to
f32 rounding (relative 1e-5; its batches pad and sum in another order).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertForMaskedLM

ROOT = Path(__file__).resolve().parent.parent
BLIMP = ROOT.parent / "shared" / "data" / "blimp"
SAMPLE = ROOT / "data" / "quickstart" / "blimp"
OUT = ROOT / "tests" / "fixtures" / "mlm"
QUICKSTART_MODEL = ROOT / "data" / "quickstart" / "models" / "tiny-multiberts-seed_0"
MODELS = {
    "tiny-multiberts-seed_0": QUICKSTART_MODEL,
    "pretraining-bin": ROOT / "tests" / "fixtures" / "bert" / "pretraining-bin",
}
PAIRS_PER_PARADIGM = 3


def tokenizer_of(model_dir: Path):
    """The checkpoint's fast tokenizer (it has word_ids()); transformers >= 5 builds it from
    vocab.txt and tokenizer_config.json."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert tokenizer.is_fast
    return tokenizer


def make_sample() -> list[str]:
    """Write the bundled sample; return its sentences in the order the Rust side reads them."""
    tok = tokenizer_of(QUICKSTART_MODEL)
    SAMPLE.mkdir(parents=True, exist_ok=True)
    sentences = []
    files = sorted(BLIMP.glob("*.jsonl"))
    assert len(files) == 67, len(files)
    for path in files:
        kept = []
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if all(len(tok(row[k])["input_ids"]) <= 64 for k in ("sentence_good", "sentence_bad")):
                kept.append(line)
                sentences += [row["sentence_good"], row["sentence_bad"]]
            if len(kept) == PAIRS_PER_PARADIGM:
                break
        assert len(kept) == PAIRS_PER_PARADIGM, path
        (SAMPLE / path.name).write_text("\n".join(kept) + "\n")
    return sentences


def make_prompts(sentences: list[str]) -> list[tuple[str, str, str]]:
    """Cloze prompts: the first 40 good sentences with a whole word among `words` (single pieces
    in both vocabularies) masked, the first one; the candidates are those six words."""
    words = ["the", "a", "was", "and", "it", "in"]
    prompts = []
    for sentence in sentences[0::2]:
        tokens = sentence.split(" ")
        for i, t in enumerate(tokens):
            if t.lower() in words:
                text = " ".join(tokens[:i] + ["[MASK]"] + tokens[i + 1 :])
                prompts.append((text, t.lower(), "|".join(words)))
                break
        if len(prompts) == 40:
            break
    return prompts


@torch.no_grad()
def log_softmax_at(model, ids: list[list[int]], positions: list[int]) -> torch.Tensor:
    batch = torch.tensor(ids)
    logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits
    rows = logits[torch.arange(len(ids)), torch.tensor(positions)]
    return torch.log_softmax(rows, dim=-1)


def pll(model, tok, sentence: str, l2r: bool) -> float:
    enc = tok(sentence)
    ids, words = enc["input_ids"], enc.word_ids()
    copies, positions, targets = [], [], []
    for i, w in enumerate(words):
        if w is None:
            continue
        copy = list(ids)
        for j in range(i, len(ids)):
            if j == i or (l2r and words[j] == w):
                copy[j] = tok.mask_token_id
        copies.append(copy)
        positions.append(i)
        targets.append(ids[i])
    lp = log_softmax_at(model, copies, positions)
    # Per-token log-probabilities in f32 as the model gives them, summed in f64 (an f32 sum of
    # ~60 terms near -300 would itself be off by ~1e-4).
    return float(lp[torch.arange(len(targets)), torch.tensor(targets)].double().sum())


def cloze(model, tok, prompt: tuple[str, str, str]) -> dict:
    text, target, candidates = prompt
    ids = tok(text)["input_ids"]
    at = ids.index(tok.mask_token_id)
    lp = log_softmax_at(model, [ids], [at])[0]
    piece = lambda t: tok(t, add_special_tokens=False)["input_ids"]
    gold = piece(target)
    assert len(gold) == 1, target
    return {
        "gold_id": gold[0],
        "gold_log_prob": float(lp[gold[0]]),
        "top": int(torch.argmax(lp)),
        "candidate_log_probs": [float(lp[piece(c)[0]]) for c in candidates.split("|")],
    }


def check_with_minicons(model_dir: Path, sentences: list[str], reference: dict) -> None:
    try:
        from minicons import scorer
    except Exception:  # minicons is optional: the definitions above are the reference
        print("minicons not importable; skipped its cross-check", file=sys.stderr)
        return
    tokenizer = tokenizer_of(model_dir)
    if not hasattr(tokenizer, "batch_encode_plus"):  # removed in transformers 5; minicons calls it
        tokenizer.batch_encode_plus = tokenizer.__call__
    lm = scorer.MaskedLMScorer(str(model_dir), "cpu", tokenizer=tokenizer)
    for metric, key in (("original", "pll"), ("within_word_l2r", "pll-word-l2r")):
        theirs = lm.sequence_score(sentences, reduction=lambda x: x.sum(0).item(), PLL_metric=metric)
        worst = max(abs(a - b) for a, b in zip(theirs, reference[key]))
        relative = max(abs(a - b) / abs(b) for a, b in zip(theirs, reference[key]))
        print(
            f"minicons {metric}: max |difference| {worst:.2e} (relative {relative:.1e}) over {len(sentences)} sentences",
            file=sys.stderr,
        )
        # minicons pads and sums in f32 in another order: agreement to f32 rounding of sums ~ -100.
        assert relative < 1e-5, (metric, worst, relative)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    sentences = make_sample()
    prompts = make_prompts(sentences)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "cloze.tsv", "w") as f:
        f.write("text\ttarget\tcandidates\n")
        for p in prompts:
            f.write("\t".join(p) + "\n")
    reference = {}
    for name, model_dir in MODELS.items():
        model = BertForMaskedLM.from_pretrained(str(model_dir)).eval()
        tok = tokenizer_of(model_dir)
        limit = model.config.max_position_embeddings
        fit = lambda s: len(tok(s)["input_ids"]) <= limit
        # Whole pairs (good, bad) that fit the model's positions.
        fits = [s for g, b in zip(sentences[0::2], sentences[1::2]) if fit(g) and fit(b) for s in (g, b)]
        entry = {
            "sentences": fits,
            "pll": [pll(model, tok, s, l2r=False) for s in fits],
            "pll-word-l2r": [pll(model, tok, s, l2r=True) for s in fits],
            "cloze": [dict(row=i, **cloze(model, tok, p)) for i, p in enumerate(prompts) if fit(p[0])],
        }
        check_with_minicons(model_dir, fits, entry)
        reference[name] = entry
        print(f"{name}: {len(fits)} sentences, {len(entry['cloze'])} prompts", file=sys.stderr)
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")


if __name__ == "__main__":
    main()
