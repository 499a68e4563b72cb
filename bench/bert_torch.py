#!/usr/bin/env python3
"""PyTorch side of the BERT speed benchmark (called by the Rust `bench-bert --compare-torch`).

    python bench/bert_torch.py --batches BATCHES.json --threads 2 \\
        [--dtype f32|f16|bf16] [--device cpu|cuda] [--repeat N]

BATCHES.json: {"config": {vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
intermediate_size, max_position_embeddings, type_vocab_size, hidden_act},
"batches": [[[token ids of one sentence], ...], ...]} -- batches as the Rust side made them.

Builds BertModel(BertConfig(**config)) with random weights (fixed seed) in eval mode, pads
each batch to its longest sentence (attention mask, token_type_ids 0), runs one warm-up
pass on the first batch, then times each of --repeat passes over all batches under
torch.inference_mode() with output_hidden_states=True (all layers, as our tool needs).
Input tensors are built (and moved to the device) before the clock starts.

Prints exactly one JSON line on stdout:
{"sentences": N, "pass_seconds": [S, ...], "sentences_per_s": X, "threads": T, "dtype": ...,
 "torch": ..., "device": ..., "repeat": R, "batches": B, "attn_implementation": ...}
where N is the sentences of one pass and X = N / the median pass. Errors: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", required=True, help="BATCHES.json written by the Rust side")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=1, help="timed passes over all batches (median reported)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads < 1 or args.repeat < 1:
        p.error("--threads and --repeat must be at least 1")
    return args


def run(args: argparse.Namespace) -> dict:
    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]

    with open(args.batches, encoding="utf-8") as f:
        spec = json.load(f)
    batches = [b for b in spec["batches"] if b]
    if not batches:
        raise ValueError(f"{args.batches}: no batches")
    config = BertConfig(**spec["config"], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(args.seed)
    model = BertModel(config).eval().to(device=device, dtype=dtype)

    inputs = []
    for batch in batches:
        longest = max(len(s) for s in batch)
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        for i, sentence in enumerate(batch):
            ids[i, : len(sentence)] = torch.tensor(sentence, dtype=torch.long)
            mask[i, : len(sentence)] = 1
        inputs.append({
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "token_type_ids": torch.zeros_like(ids).to(device),
        })

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    checksum = 0.0
    with torch.inference_mode():
        out = model(**inputs[0], output_hidden_states=True)  # warm-up
        assert len(out.hidden_states) == config.num_hidden_layers + 1
        sync()
        pass_seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for x in inputs:
                out = model(**x, output_hidden_states=True)
            sync()
            pass_seconds.append(time.perf_counter() - start)
        checksum = float(out.hidden_states[-1][0, 0, 0])  # touch the result
    if checksum != checksum:
        raise RuntimeError("NaN in the hidden states")

    sentences = sum(len(b) for b in batches)
    return {
        "sentences": sentences,
        "pass_seconds": [round(s, 6) for s in pass_seconds],
        "sentences_per_s": round(sentences / statistics.median(pass_seconds), 3),
        "threads": args.threads,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "device": args.device,
        "repeat": args.repeat,
        "batches": len(batches),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
    }


def main() -> int:
    args = parse_args()
    try:
        result = run(args)
    except Exception as e:  # noqa: BLE001 - the caller shows the last stderr line
        msg = str(e).strip().splitlines()
        print(f"bench/bert_torch.py: {type(e).__name__}: {msg[-1] if msg else ''}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
