#!/usr/bin/env python3
"""Build tiny BERT checkpoints + PyTorch reference outputs for the candle parity tests.

Run from the repository root (needs torch, transformers, safetensors; see the
project's ignored .venv):

    .venv/bin/python scripts/make_bert_fixtures.py

It (re)writes tests/fixtures/bert/:

    vocab.txt, texts.json                     shared vocabulary and test texts
    pretraining-bin/      BertForPreTraining, gelu,     uncased, zip pytorch_model.bin
                          (`bert.` prefix, cls.* heads, extra int64 bert.embeddings.position_ids)
    model-safetensors/    BertModel (+pooler), gelu_new, cased, model.safetensors
    legacy-gamma-beta/    BertForMaskedLM, relu, uncased, zip pytorch_model.bin with
                          LayerNorm .gamma/.beta names and no cls.predictions.decoder.{weight,bias}
                          (decoder must be tied to the word embeddings, bias = cls.predictions.bias)
    legacy-pickle/        legacy (non-zip) pickle pytorch_model.bin; loaders must refuse it
    fast-tokenizer/       tokenizer.json (uncased, BertTokenizerFast) + vocab/config, no weights

Checkpoint dirs 1-3 hold reference.safetensors (float32 hidden states of every layer,
pooler, MLM logits; int64 inputs) and tokens.json (ids with truncation to max_length,
no padding) made with the *slow* python tokenizer (transformers v5: BertTokenizerLegacy,
v4: BertTokenizer).  fast-tokenizer/tokens.json holds the BertTokenizerFast ids.

Everything is deterministic (fixed torch seeds); rerunning with the same torch /
transformers versions gives the same numbers.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import shutil
import string
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, BertModel

try:  # transformers >= 5: BertTokenizer is the Rust-backed one, the python one is "Legacy"
    from transformers import BertTokenizerLegacy as SlowBertTokenizer
except ImportError:  # transformers 4.x
    from transformers import BertTokenizer as SlowBertTokenizer
from transformers import BertTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "bert"
MAX_LENGTH = 24

# --------------------------------------------------------------------------- vocab


def build_vocab() -> list[str]:
    # Compact order, but special ids deliberately not 0..4 so that nothing may hard-code them.
    specials = ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    punct = list(string.punctuation)  # !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
    digits = list(string.digits)
    lower = list(string.ascii_lowercase)
    upper = ["A", "C", "H", "I", "W"]  # cased: other capitals only via whole words, "HELLO" -> [UNK]
    accented = ["é", "è", "à", "ï", "ö"]
    cjk = ["中", "文", "我"]  # 爱 is deliberately missing -> [UNK]
    symbols = ["👍"]
    words = (
        "the cat sat on mat was it movie great good film play player un text hello world wait "
        "what don know cafe deja vu naive zero soft bell ok and in we long very once upon time "
        "there were three bears who lived house forest they all day night"
    ).split()
    cased_words = ["The", "Hello", "World", "Wait"]
    pieces = ["##ing", "##ed", "##s", "##er", "##able", "##ably", "##believ", "##play",
              "##ation", "##op"]
    sub_letters = ["##" + c for c in string.ascii_lowercase]
    sub_accented = ["##" + c for c in accented]
    out: list[str] = []
    for tok in (specials + punct + digits + lower + upper + accented + cjk + symbols + words
                + cased_words + pieces + sub_letters + sub_accented):
        if tok not in out:
            out.append(tok)
    return out


# --------------------------------------------------------------------------- texts

LONG_TEXT = (
    "once upon a time there were three bears who lived in a very long house in the forest, "
    "and they played all day and all night; it was unbelievably good."
)

TEXTS = {
    # kept to 9 texts (mlm_logits [B, T, V] dominate the fixture size)
    "single": [
        "Café déjà vu, naïve coöperation.",  # accents: stripped when uncased, ##é when cased
        "我爱中文 text 한국어",  # 爱 and the Hangul word are not in the vocab -> [UNK]
        "great 👍🏽 movie 👍: The unplayable player played unbelievably.",  # emoji, WordPiece
        "Wait... what?! I don't know. HELLO World",  # punctuation, case
        "a    b\t\tc\n d\u00a0e",  # runs of spaces, tabs, newline, no-break space
        "",
        LONG_TEXT,  # truncated at max_length
        "the cat [MASK] on the mat [mask]",  # special token inside text; lower-case is not special
        # zero-width space / soft hyphen / BEL are deleted (joining the words), e + combining
        # acute (NFC -> é in the slow tokenizer), a 101-char word (> max_input_chars_per_word)
        "zero\u200bwidth soft\u00adhyphen \x07bell e\u0301 ok " + "a" * 101,
    ],
    "pairs": [
        ["the cat sat on the mat", "it was great"],
        ["Wait... what?!", "Hello world"],
        ["we played a good film", LONG_TEXT],  # longest_first truncation of the second text
    ],
}

# --------------------------------------------------------------------------- checkpoints

TINY = dict(
    hidden_size=48,
    num_attention_heads=3,
    num_hidden_layers=2,
    intermediate_size=72,
    max_position_embeddings=40,
    type_vocab_size=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12,
    initializer_range=0.02,
)

UNCASED_TOK = {"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
               "model_max_length": 512}
CASED_TOK = {"do_lower_case": False, "tokenize_chinese_chars": True, "strip_accents": None,
             "model_max_length": 512}


def make_config(vocab_size: int, hidden_act: str, **overrides) -> BertConfig:
    kw = dict(TINY, vocab_size=vocab_size, hidden_act=hidden_act, pad_token_id=0)
    kw.update(overrides)
    cfg = BertConfig(**kw)
    cfg._attn_implementation = "eager"  # plain softmax attention as the reference
    return cfg


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int) -> None:
    """Make every parameter non-trivial: no identity LayerNorms, no zero biases."""
    g = torch.Generator().manual_seed(seed)
    seen = set()
    for name, p in model.named_parameters():  # tied parameters are yielded once
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        if "LayerNorm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.2 * noise)
        elif name.endswith("bias") or p.dim() == 1:
            p.add_(0.1 * noise)
        else:
            p.add_(0.2 * noise)


def build_model(cls, cfg: BertConfig, seed: int):
    torch.manual_seed(seed)
    model = cls(cfg)
    perturb(model, seed + 1000)
    model.eval()
    return model.float()


# config.json flavours: "full" = everything transformers 5 writes (save_pretrained),
# "hub" = the short form of the MultiBERTs / bert-base-uncased Hub configs,
# "google" = the original TF bert_config.json keys only (no model_type, no layer_norm_eps).
GOOGLE_KEYS = ["attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
               "initializer_range", "intermediate_size", "max_position_embeddings",
               "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size"]
HUB_KEYS = GOOGLE_KEYS + ["architectures", "layer_norm_eps", "model_type", "pad_token_id",
                          "position_embedding_type", "transformers_version", "use_cache"]


def config_json(cfg: BertConfig, flavour: str) -> str:
    if flavour == "full":
        return cfg.to_json_string(use_diff=False)
    full = cfg.to_dict()
    full.update(position_embedding_type="absolute", transformers_version=transformers.__version__,
                use_cache=True, attention_probs_dropout_prob=0.1, hidden_dropout_prob=0.1)
    keys = HUB_KEYS if flavour == "hub" else GOOGLE_KEYS
    return json.dumps({k: full[k] for k in sorted(keys)}, indent=2) + "\n"


def write_common(d: Path, cfg: BertConfig, tok_cfg: dict, vocab_path: Path,
                 flavour: str = "full") -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "config.json").write_text(config_json(cfg, flavour))
    shutil.copy(vocab_path, d / "vocab.txt")
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")


def slow_tokenizer(d: Path):
    tok = SlowBertTokenizer.from_pretrained(str(d))
    assert "Fast" not in type(tok).__name__ and not getattr(tok, "is_fast", False), type(tok)
    return tok


def token_ids(tok, texts) -> dict:
    single = [tok(t, truncation=True, max_length=MAX_LENGTH)["input_ids"] for t in texts["single"]]
    pairs = [tok(a, b, truncation=True, max_length=MAX_LENGTH)["input_ids"] for a, b in texts["pairs"]]
    return {"single": single, "pairs": pairs, "max_length": MAX_LENGTH}


def write_tokens(d: Path, ids: dict) -> None:
    # one list per line keeps the file diff-friendly
    lines = ["{"]
    for key in ("single", "pairs"):
        rows = ",\n".join("    " + json.dumps(r) for r in ids[key])
        lines.append(f'  "{key}": [\n{rows}\n  ],')
    lines.append(f'  "max_length": {ids["max_length"]}')
    lines.append("}")
    (d / "tokens.json").write_text("\n".join(lines) + "\n")


@torch.no_grad()
def references(model, tok, texts) -> dict[str, torch.Tensor]:
    base = model.bert if hasattr(model, "bert") else model
    n_layers = base.config.num_hidden_layers
    out: dict[str, torch.Tensor] = {}
    batches = {
        "single": tok(texts["single"], padding=True, truncation=True, max_length=MAX_LENGTH,
                      return_tensors="pt", return_token_type_ids=True),
        "pairs": tok([a for a, _ in texts["pairs"]], [b for _, b in texts["pairs"]], padding=True,
                     truncation=True, max_length=MAX_LENGTH, return_tensors="pt", return_token_type_ids=True),
    }
    for prefix, enc in batches.items():
        ids, mask, tt = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
        out[f"{prefix}.input_ids"] = ids.to(torch.int64)
        out[f"{prefix}.attention_mask"] = mask.to(torch.int64)
        out[f"{prefix}.token_type_ids"] = tt.to(torch.int64)
        bo = base(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
        hs = bo.hidden_states
        assert len(hs) == n_layers + 1, len(hs)
        emb = base.embeddings(input_ids=ids, token_type_ids=tt)
        assert torch.equal(hs[0], emb), "hidden_states[0] is not the embeddings output"
        assert torch.equal(hs[-1], bo.last_hidden_state)
        for i, h in enumerate(hs):
            out[f"{prefix}.hidden_states.{i}"] = h.float().contiguous()
        if getattr(base, "pooler", None) is not None:
            out[f"{prefix}.pooler"] = bo.pooler_output.float().contiguous()
        if model is not base:
            full = model(input_ids=ids, attention_mask=mask, token_type_ids=tt)
            logits = full.prediction_logits if hasattr(full, "prediction_logits") else full.logits
            # independent check of the head: tied decoder (word embeddings) + cls.predictions.bias
            h = model.cls.predictions.transform(bo.last_hidden_state)
            manual = h @ base.embeddings.word_embeddings.weight.T + model.cls.predictions.bias
            assert torch.allclose(manual, logits, atol=1e-5), (manual - logits).abs().max()
            out[f"{prefix}.mlm_logits"] = logits.float().contiguous()
    return out


def check_batches(ref: dict[str, torch.Tensor]) -> None:
    for prefix in ("single", "pairs"):
        lens = ref[f"{prefix}.attention_mask"].sum(1)
        assert lens.min() < lens.max(), f"{prefix}: batch has no padding"
    assert ref["single.input_ids"].shape[1] == MAX_LENGTH, "long text was not truncated"


def with_position_ids(sd: dict, n_pos: int) -> collections.OrderedDict:
    out = collections.OrderedDict()
    for k, v in sd.items():
        out[k] = v
        if k == "bert.embeddings.token_type_embeddings.weight":
            out["bert.embeddings.position_ids"] = torch.arange(n_pos, dtype=torch.int64).unsqueeze(0)
    assert "bert.embeddings.position_ids" in out
    return out


def legacy_names(sd: dict) -> collections.OrderedDict:
    out = collections.OrderedDict()
    for k, v in sd.items():
        if k in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
            continue
        if "LayerNorm" in k:
            k = k.replace(".weight", ".gamma").replace(".bias", ".beta")
        out[k] = v
    assert "cls.predictions.bias" in out
    return out


def half_precision_errors(model, ref: dict[str, torch.Tensor]) -> dict:
    """transformers' own f16/bf16 error on the single texts: per dtype and hidden state, the
    relative error in norm over real tokens (||h - h_f32|| / ||h_f32||). The Rust test holds our
    half-precision runs to these, since with noisy weights they exceed 1e-2 at the last layer."""
    mask = ref["single.attention_mask"][..., None].float()
    errors = {}
    for name, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16)]:
        half = copy.deepcopy(model).to(dtype)
        with torch.no_grad():
            out = half.bert if hasattr(half, "bert") else half
            states = out(input_ids=ref["single.input_ids"], attention_mask=ref["single.attention_mask"],
                         token_type_ids=ref["single.token_type_ids"], output_hidden_states=True).hidden_states
        errors[name] = [float(((h.float() - ref[f"single.hidden_states.{i}"]) * mask).norm()
                              / (ref[f"single.hidden_states.{i}"] * mask).norm()) for i, h in enumerate(states)]
    return errors


def write_half_precision(d: Path, model, ref: dict[str, torch.Tensor]) -> None:
    (d / "half_precision.json").write_text(json.dumps(half_precision_errors(model, ref), indent=1) + "\n")


def main() -> None:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(1)  # deterministic reductions
    OUT.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab()
    vocab_path = OUT / "vocab.txt"
    vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (OUT / "texts.json").write_text(json.dumps(TEXTS, ensure_ascii=False, indent=2) + "\n",
                                    encoding="utf-8")
    V = len(vocab)

    # 1. BertForPreTraining, gelu, uncased, zip pytorch_model.bin + position_ids buffer
    d = OUT / "pretraining-bin"
    cfg = make_config(V, "gelu", architectures=["BertForPreTraining"])
    model = build_model(BertForPreTraining, cfg, seed=1)
    assert model.cls.predictions.decoder.weight.data_ptr() == \
        model.bert.embeddings.word_embeddings.weight.data_ptr(), "decoder not tied"
    write_common(d, cfg, UNCASED_TOK, vocab_path, flavour="hub")
    sd = with_position_ids(model.state_dict(), cfg.max_position_embeddings)
    torch.save(sd, d / "pytorch_model.bin")
    tok = slow_tokenizer(d)
    ref = references(model, tok, TEXTS)
    check_batches(ref)
    save_file(ref, str(d / "reference.safetensors"))
    write_tokens(d, token_ids(tok, TEXTS))
    write_half_precision(d, model, ref)

    # 2. BertModel with pooler, gelu_new, cased, model.safetensors
    d = OUT / "model-safetensors"
    cfg = make_config(V, "gelu_new", architectures=["BertModel"])
    model = build_model(BertModel, cfg, seed=2)
    write_common(d, cfg, CASED_TOK, vocab_path)
    model.save_pretrained(str(d))  # transformers 5 always writes safetensors
    (d / "config.json").write_text(config_json(cfg, "full"))  # without the eager-attention key
    assert (d / "model.safetensors").exists() and not (d / "pytorch_model.bin").exists()
    tok = slow_tokenizer(d)
    ref = references(model, tok, TEXTS)
    check_batches(ref)
    save_file(ref, str(d / "reference.safetensors"))
    write_tokens(d, token_ids(tok, TEXTS))
    write_half_precision(d, model, ref)

    # 3. BertForMaskedLM, relu, uncased, gamma/beta names, decoder removed (must be tied)
    d = OUT / "legacy-gamma-beta"
    cfg = make_config(V, "relu", architectures=["BertForMaskedLM"])
    model = build_model(BertForMaskedLM, cfg, seed=3)
    write_common(d, cfg, UNCASED_TOK, vocab_path, flavour="google")
    torch.save(legacy_names(model.state_dict()), d / "pytorch_model.bin")
    tok = slow_tokenizer(d)
    ref = references(model, tok, TEXTS)
    check_batches(ref)
    save_file(ref, str(d / "reference.safetensors"))
    write_tokens(d, token_ids(tok, TEXTS))
    write_half_precision(d, model, ref)

    # 4. legacy (non-zip) pickle: must be refused with a clear message
    d = OUT / "legacy-pickle"
    cfg = make_config(V, "gelu", hidden_size=12, num_attention_heads=2, num_hidden_layers=1,
                      intermediate_size=16, max_position_embeddings=8)
    old, old_bytes = None, b""
    if (d / "pytorch_model.bin").exists():
        old_bytes = (d / "pytorch_model.bin").read_bytes()
        old = torch.load(d / "pytorch_model.bin", map_location="cpu", weights_only=True)
    write_common(d, cfg, UNCASED_TOK, vocab_path, flavour="hub")
    torch.manual_seed(4)
    small = BertModel(cfg, add_pooling_layer=False)
    sd = {k: v for k, v in small.state_dict().items() if "encoder" in k}  # keep it tiny
    if old is not None and old.keys() == sd.keys() and all(torch.equal(old[k], sd[k]) for k in sd):
        sd = old  # the legacy format keys storages by memory address: keep the old bytes
    with open(d / "pytorch_model.bin", "wb") as f:
        if sd is old:
            f.write(old_bytes)
        else:
            torch.save(sd, f, _use_new_zipfile_serialization=False)

    # 5. tokenizer.json (fast tokenizer, uncased), no weights
    d = OUT / "fast-tokenizer"
    cfg = make_config(V, "gelu", architectures=["BertModel"])
    write_common(d, cfg, UNCASED_TOK, vocab_path, flavour="hub")
    fast = BertTokenizerFast.from_pretrained(str(d))  # converts vocab.txt + tokenizer_config.json
    assert fast.is_fast and fast.vocab_size == V, (type(fast), fast.vocab_size)
    fast.save_pretrained(str(d))
    for extra in ("special_tokens_map.json",):
        if (d / extra).exists():
            (d / extra).unlink()
    (d / "tokenizer_config.json").write_text(json.dumps(UNCASED_TOK, indent=2) + "\n")
    shutil.copy(vocab_path, d / "vocab.txt")
    assert (d / "tokenizer.json").exists()
    fast = BertTokenizerFast(tokenizer_file=str(d / "tokenizer.json"), **UNCASED_TOK)
    assert fast.is_fast and fast.vocab_size == V and fast.cls_token_id == vocab.index("[CLS]")
    fast_ids = token_ids(fast, TEXTS)
    # the bare `tokenizers` library on tokenizer.json must agree with transformers' wrapper
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(MAX_LENGTH)
    assert [raw.encode(t).ids for t in TEXTS["single"]] == fast_ids["single"]
    assert [raw.encode(a, b).ids for a, b in TEXTS["pairs"]] == fast_ids["pairs"]
    write_tokens(d, fast_ids)
    slow_ids = json.loads((OUT / "pretraining-bin" / "tokens.json").read_text())
    if fast_ids != slow_ids:
        print("NOTE: fast (tokenizer.json) and slow uncased tokenizers disagree:")
        for key in ("single", "pairs"):
            for i, (a, b) in enumerate(zip(slow_ids[key], fast_ids[key])):
                if a != b:
                    print(f"  {key}[{i}] slow={a}\n  {' ' * len(key)}    fast={b}")

    # summary
    total = 0
    print(f"vocab size {V}")
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            size = p.stat().st_size
            total += size
            print(f"{size:>9}  {p.relative_to(ROOT)}")
    print(f"{total:>9}  total ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    sys.exit(main())
