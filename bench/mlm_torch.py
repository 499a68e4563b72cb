#!/usr/bin/env python3
"""PyTorch side of the masked-LM benchmark (called by `mb-stats bench-mlm --compare-torch`).

    python bench/mlm_torch.py --model DIR --sentences SENTENCES.json --threads 2 \\
        [--scoring pll|pll-word-l2r] [--batch-sentences 8] [--dtype f32|f16|bf16] [--device cpu|cuda] [--repeat N]

DIR: a checkpoint the Rust side wrote (config.json, vocab.txt, model.safetensors with the MLM
head). SENTENCES.json: a JSON list of texts (each pair's good then bad sentence).

The way a transformers user computes pseudo-log-likelihoods (as minicons' MaskedLMScorer does):
BertForMaskedLM in eval mode, the fast tokenizer; for each group of --batch-sentences sentences,
every masked copy of every sentence (one per token the tokenizer did not add; `pll-word-l2r`
also masks the later pieces of the token's word) in one padded batch, the MLM logits of every
position, log-softmax, the true token's log-probability at the masked position, summed per
sentence. One warm-up group, then --repeat timed passes over all sentences (tokenisation
included) under torch.inference_mode().

Prints exactly one JSON line on stdout:
{"sentences": N, "pass_seconds": [S, ...], "pll": [...], "threads": T, "torch": ..., "device": ...}
Errors: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--sentences", required=True)
    p.add_argument("--scoring", choices=["pll", "pll-word-l2r"], default="pll")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-sentences", type=int, default=8)
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=1)
    return p.parse_args()


def run(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model = BertForMaskedLM.from_pretrained(args.model).to(device=device, dtype=dtype).eval()
    sentences = json.load(open(args.sentences))
    l2r = args.scoring == "pll-word-l2r"

    def score(group: list[str]) -> list[float]:
        copies, positions, targets, owner = [], [], [], []
        for k, sentence in enumerate(group):
            enc = tokenizer(sentence)
            ids, words = enc["input_ids"], enc.word_ids()
            for i, w in enumerate(words):
                if w is None:
                    continue
                copy = list(ids)
                for j in range(i, len(ids)):
                    if j == i or (l2r and words[j] == w):
                        copy[j] = tokenizer.mask_token_id
                copies.append(copy)
                positions.append(i)
                targets.append(ids[i])
                owner.append(k)
        length = max(len(c) for c in copies)
        input_ids = torch.tensor([c + [tokenizer.pad_token_id] * (length - len(c)) for c in copies], device=device)
        mask = torch.tensor([[1] * len(c) + [0] * (length - len(c)) for c in copies], device=device)
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        rows = torch.arange(len(copies), device=device)
        lp = torch.log_softmax(logits[rows, torch.tensor(positions, device=device)].float(), dim=-1)
        token_lp = lp[rows, torch.tensor(targets, device=device)].double().cpu()
        out = [0.0] * len(group)
        for k, v in zip(owner, token_lp.tolist()):
            out[k] += v
        return out

    groups = [sentences[i : i + args.batch_sentences] for i in range(0, len(sentences), args.batch_sentences)]
    with torch.inference_mode():
        score(groups[0])
        passes, pll = [], []
        for _ in range(args.repeat):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            pll = [v for g in groups for v in score(g)]
            if device.type == "cuda":
                torch.cuda.synchronize()
            passes.append(time.perf_counter() - start)
    return {
        "sentences": len(sentences),
        "pass_seconds": passes,
        "pll": pll,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": args.device,
    }


def main() -> None:
    try:
        print(json.dumps(run(parse_args())))
    except Exception as e:  # one line for the Rust side
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
