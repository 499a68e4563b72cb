#!/usr/bin/env python3
"""Writes a PolyPythias-shaped lm-evaluation-harness output in the harness's exact formats, for
the worked example in README.md and docs/import.md and the importer's tests (no torch, no harness: standard library only).

The numbers are simulated: each (seed, step) checkpoint answers each document correctly with a
probability that grows with the step and shifts with the seed, so the analyses have a learning
curve and a seed effect to find. Everything else (file names, folders, keys, the stringified
responses of v0.4.3+, the hashes) is what the harness writes:

- ``v0.4.3/``: ``<model_name_sanitized>/results_<date_id>.json`` and
  ``samples_<task>_<date_id>.jsonl``, one run per (seed, step) -- 5 seeds x 3 steps x 2 tasks of
  ``pythia-160m-seedN``, and the final step of a second arm sharing the seeds,
  ``pythia-160m-data-seedN`` (PolyPythias' data-order variant);
- ``v0.4.0/``: ``results.json`` and ``<model_args>_<task>.jsonl`` (an indented JSON array);
- ``lm-checkpoints/``: ``<org>/<model>/step_<K>/results_<tasks>.json`` and ``samples_<task>.jsonl``.

Usage: python3 scripts/make_lm_eval_sample.py OUT_DIR
"""

import hashlib
import json
import math
import random
import sys
from pathlib import Path

SEEDS = [1, 2, 3, 4, 5]
STEPS = [1000, 13000, 143000]
ARC_DOCS = 40
LAMBADA_DOCS = 50
WORDS = "river stone garden window letter mountain candle silver morning harbor".split()


def hash_string(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def arc_docs():
    rng = random.Random(7)
    docs = []
    for i in range(ARC_DOCS):
        choices = rng.sample(WORDS, 4)
        docs.append({
            "id": f"Mercury_{7000 + i}",
            "question": f"Which word completes example {i}?",
            "choices": {"text": choices, "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[i % 4],
        })
    return docs


def lambada_docs():
    rng = random.Random(11)
    return [{"text": " ".join(rng.choices(WORDS, k=12)) + " " + WORDS[i % len(WORDS)], "domain": None}
            for i in range(LAMBADA_DOCS)]


def p_correct(model, seed, step, doc, base):
    """Probability of a correct answer: learning over steps, a seed effect, document difficulty;
    the data-order arm is a little weaker."""
    learning = math.log10(step) / math.log10(max(STEPS))
    seed_shift = 0.25 * math.sin(seed * 1.7) - (0.3 if "data-seed" in model else 0.0)
    difficulty = math.sin(doc * 2.3) * 0.8
    return 1 / (1 + math.exp(-(base + 2.0 * learning + seed_shift - difficulty)))


def arc_sample(doc_id, doc, rng, model, seed, step, stringify):
    gold = "ABCD".index(doc["answerKey"])
    correct = rng.random() < p_correct(model, seed, step, doc_id, -1.2)
    lls = [-rng.uniform(2.0, 6.0) for _ in range(4)]
    best = max(lls) + rng.uniform(0.1, 1.0)
    wrong = rng.choice([i for i in range(4) if i != gold])
    lls[gold if correct else wrong] = best
    lengths = [len(" " + c) for c in doc["choices"]["text"]]
    normed = [ll / n for ll, n in zip(lls, lengths)]
    acc = 1.0 if max(range(4), key=lambda i: lls[i]) == gold else 0.0
    acc_norm = 1.0 if max(range(4), key=lambda i: normed[i]) == gold else 0.0
    prompt = f"Question: {doc['question']}\nAnswer:"
    arguments = [[prompt, " " + c] for c in doc["choices"]["text"]]
    resps = [[[ll, False]] for ll in lls]
    filtered = [[ll, False] for ll in lls]
    return sample(doc_id, doc, gold, arguments, resps, filtered, {"acc": acc, "acc_norm": acc_norm}, stringify)


def lambada_sample(doc_id, doc, rng, model, seed, step, stringify):
    context, word = doc["text"].rsplit(" ", 1)
    greedy = rng.random() < p_correct(model, seed, step, doc_id, -0.6)
    ll = -rng.uniform(0.2, 2.0) if greedy else -rng.uniform(2.0, 8.0)
    arguments = [[context, " " + word]]
    return sample(doc_id, doc, " " + word, arguments, [[[ll, greedy]]], [[ll, greedy]],
                  {"perplexity": ll, "acc": int(greedy)}, stringify)


def sample(doc_id, doc, target, arguments, resps, filtered, metrics, stringify):
    """One record as the evaluator builds it; v0.4.3+ then stringifies (sanitize_list)."""
    record = {
        "doc_id": doc_id,
        "doc": doc,
        "target": target,
        "arguments": arguments,
        "resps": resps,
        "filtered_resps": filtered,
        "filter": "none",
        "metrics": list(metrics),
        "doc_hash": hash_string(json.dumps(doc, indent=2, ensure_ascii=False)),
        "prompt_hash": hash_string(arguments[0][0]),
        "target_hash": hash_string(str(target)),
    }
    record.update(metrics)
    if stringify:
        record["arguments"] = {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)}
                               for i, arg in enumerate(arguments)}
        record["resps"] = sanitize(resps)
        record["filtered_resps"] = sanitize(filtered)
        record["target"] = str(target)
    return record


def sanitize(value):
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return str(value)


TASKS = {
    "arc_easy": (arc_docs, arc_sample, [("acc", "mean"), ("acc_norm", "mean")]),
    "lambada_openai": (lambada_docs, lambada_sample, [("perplexity", "perplexity"), ("acc", "mean")]),
}


def run(model, seed, step, tasks, stringify):
    """The samples of one checkpoint on `tasks`, and the harness's results object for them."""
    samples, results, configs = {}, {}, {}
    for task in tasks:
        make_docs, make_sample, metric_list = TASKS[task]
        rng = random.Random(f"{model}-{step}-{task}")
        docs = make_docs()
        records = [make_sample(i, d, rng, model, seed, step, stringify) for i, d in enumerate(docs)]
        # Several ranks write interleaved: the file order is not the document order.
        random.Random(f"order-{model}-{step}-{task}").shuffle(records)
        samples[task] = records
        entry = {"alias": task}
        for metric, aggregation in metric_list:
            values = [r[metric] for r in records]
            if aggregation == "mean":
                value = sum(values) / len(values)
            else:
                value = math.exp(-sum(values) / len(values))
            entry[f"{metric},none"] = value
            entry[f"{metric}_stderr,none"] = "N/A"
        results[task] = entry
        configs[task] = {"task": task, "output_type": "multiple_choice" if task == "arc_easy" else "loglikelihood",
                         "metric_list": [{"metric": m, "aggregation": a, "higher_is_better": m != "perplexity"}
                                         for m, a in metric_list]}
    model_args = f"pretrained={model},revision=step{step},dtype=float32"
    return samples, {
        "results": results,
        "group_subtasks": {t: [] for t in tasks},
        "configs": configs,
        "versions": {t: 1.0 for t in tasks},
        "n-shot": {t: 0 for t in tasks},
        "n-samples": {t: {"original": len(samples[t]), "effective": len(samples[t])} for t in tasks},
        "config": {"model": "hf", "model_args": model_args, "batch_size": "16", "device": "cuda:0"},
        "git_hash": "e6ea3b2",
        "model_name": model,
        "model_name_sanitized": model.replace("/", "__"),
    }


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(out):
    out = Path(out)
    tasks = list(TASKS)
    # v0.4.3+: one folder per model, one results/samples set per run, told apart by date id.
    minute = 0
    runs = [(f"EleutherAI/pythia-160m-seed{seed}", seed, STEPS) for seed in SEEDS]
    runs += [(f"EleutherAI/pythia-160m-data-seed{seed}", seed, STEPS[-1:]) for seed in SEEDS]
    for model, seed, steps in runs:
        folder = out / "v0.4.3" / model.replace("/", "__")
        folder.mkdir(parents=True, exist_ok=True)
        for step in steps:
            samples, results = run(model, seed, step, tasks, stringify=True)
            minute += 1
            date_id = f"2024-06-01T{10 + minute // 60:02d}-{minute % 60:02d}-07.{123456 + minute}"
            (folder / f"results_{date_id}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
            for task in tasks:
                write_jsonl(folder / f"samples_{task}_{date_id}.jsonl", samples[task])
    # v0.4.0-0.4.2: one output folder per run, an indented JSON array per task.
    for seed in SEEDS[:2]:
        model = f"EleutherAI/pythia-160m-seed{seed}"
        samples, results = run(model, seed, 143000, ["arc_easy"], stringify=False)
        folder = out / "v0.4.0" / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        del results["model_name"], results["model_name_sanitized"]
        for record in samples["arc_easy"]:  # fields added in later versions
            for key in ["filter", "metrics", "doc_hash", "prompt_hash", "target_hash"]:
                del record[key]
        (folder / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        prefix = results["config"]["model_args"].replace("/", "__").replace("=", "__")
        (folder / f"{prefix}_arc_easy.jsonl").write_text(json.dumps(samples["arc_easy"], indent=2), encoding="utf-8")
    # lm-checkpoints: <org>/<model>/step_<K>/, the model handed to the harness as an object.
    for seed in SEEDS[:2]:
        model = f"EleutherAI/pythia-160m-seed{seed}"
        for step in STEPS[:2]:
            samples, results = run(model, seed, step, ["arc_easy"], stringify=False)
            folder = out / "lm-checkpoints" / model / f"step_{step}"
            folder.mkdir(parents=True, exist_ok=True)
            results["config"] = {"model": "HFLM", "model_args": None}
            del results["model_name"], results["model_name_sanitized"]
            (folder / "results_arc_easy.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
            (folder / "samples_arc_easy.jsonl").write_text(json.dumps(samples["arc_easy"], indent=2), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
