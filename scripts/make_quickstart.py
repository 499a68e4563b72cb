"""Make the bundled offline quickstart: a templated sentiment data set and a tiny BERT seed suite.

    .venv/bin/python scripts/make_quickstart.py

regenerates data/quickstart/ (deterministic: fixed seeds, single-threaded torch on CPU; a few
minutes on 2 cores):

- sentiment/{train,dev}.tsv: movie-review-like sentences from templates (columns `sentence`,
  `label`; 1 = positive): negation flips a clause, after "but"/"although" the main clause decides,
  5% of the labels flipped at random;
- models/tiny-multiberts-seed_{0..4}, their -step_{0,100,200} snapshots (seeds 0-2) and
  models/tiny-bert-original: tiny BERTs (hidden 64, 2 layers) pretrained with masked-LM on an
  unlabelled corpus from the same generator, laid out like the google/multiberts-seed_N Hub repos.

Then it prints a sanity check, each checkpoint's linear-probe dev accuracy (mean-pooled last
layer, logistic regression), which is not saved. Needs numpy, scikit-learn, torch, transformers.
"""

import json
import shutil
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "data" / "quickstart"
N_TRAIN, N_DEV, N_CORPUS = 2000, 500, 40000
LABEL_NOISE = 0.05
SEEDS, SNAPSHOT_SEEDS, SNAPSHOT_STEPS = range(5), range(3), (0, 100, 200)
STEPS, BASELINE_SEED, BASELINE_STEPS = 600, 100, 1200
BATCH, MAX_LEN, LR = 64, 32, 4e-3

# ---------------------------------------------------------------------------------------------
# 1. Sentence generator

SUBJECTS = [  # (phrase, plural)
    ("the movie", 0), ("this movie", 0), ("the film", 0), ("this film", 0), ("the story", 0),
    ("the plot", 0), ("the acting", 0), ("the cast", 0), ("the script", 0), ("the dialogue", 0),
    ("the direction", 0), ("the director", 0), ("the soundtrack", 0), ("the score", 0),
    ("the ending", 0), ("the cinematography", 0), ("the lead actor", 0), ("the lead actress", 0),
    ("the sequel", 0), ("the pacing", 0), ("the humor", 0), ("the screenplay", 0),
    ("the villain", 0), ("the hero", 0), ("the editing", 0), ("the final act", 0),
    ("the opening scene", 0), ("the premise", 0), ("the music", 0), ("the photography", 0),
    ("the characters", 1), ("the performances", 1), ("the visuals", 1), ("the jokes", 1),
    ("the action scenes", 1), ("the special effects", 1), ("the costumes", 1), ("the songs", 1),
]
POS_ADJ = """good great excellent wonderful brilliant superb fantastic amazing delightful charming
moving touching beautiful gorgeous clever witty funny hilarious smart engaging gripping thrilling
compelling entertaining enjoyable memorable powerful stunning impressive inspiring heartfelt fresh
original solid strong satisfying lovely elegant sharp riveting masterful tender warm joyful
magnificent terrific""".split()
NEG_ADJ = """bad terrible awful horrible dreadful boring dull tedious bland weak poor clumsy messy
stupid silly pointless lifeless flat predictable forgettable shallow painful annoying irritating
awkward sloppy lazy confusing tiresome mediocre dismal disappointing unbearable stale cheap hollow
ugly miserable clunky overlong pretentious cold joyless lame""".split()
POS_VERB = [("loved", "love"), ("enjoyed", "enjoy"), ("adored", "adore"), ("admired", "admire"),
            ("liked", "like"), ("appreciated", "appreciate"), ("relished", "relish"),
            ("treasured", "treasure"), ("praised", "praise"), ("cherished", "cherish")]
NEG_VERB = [("hated", "hate"), ("disliked", "dislike"), ("despised", "despise"),
            ("loathed", "loathe"), ("regretted", "regret"), ("resented", "resent"),
            ("detested", "detest"), ("mocked", "mock"), ("abhorred", "abhor")]
# Intensifiers and adverbs: neutral ones, and collocations of one polarity ("so charming", "too
# dull", "absolutely loved") that give masked-LM pretraining a local cue to each word's polarity.
INTENSIFIERS = "very really extremely quite incredibly remarkably pretty fairly".split()
POS_INTENSIFIERS = "so truly wonderfully beautifully".split()
NEG_INTENSIFIERS = "too rather painfully hopelessly".split()
VERB_ADVERBS = "really honestly completely totally".split()
POS_VERB_ADVERBS = "absolutely genuinely".split()
NEG_VERB_ADVERBS = "thoroughly utterly".split()
GENRES = """film movie thriller comedy drama romance documentary western musical mystery story
adventure sequel remake cartoon picture""".split()
PREFIXES = ["honestly ,", "overall ,", "frankly ,", "in my opinion ,", "to be honest ,", "i think",
            "i felt that", "for the most part ,", "all in all ,", "at first glance ,",
            "as expected ,", "to my surprise ,", "in the end ,", "i must say", "if you ask me ,"]
WHEN = ["last night", "last weekend", "on sunday", "on friday", "yesterday", "this morning",
        "a week ago", "over the holidays", "twice", "again"]
WITH = ["with my friends", "with my family", "with my sister", "with my brother", "with my kids",
        "with my parents", "with my wife", "with my husband", "with my roommate", "alone"]
WHERE = ["at the theater", "at the cinema", "at home", "on the plane", "on tv", "on my laptop",
         "at a festival", "downtown"]


P_NEGATE, P_PAIR, P_INTENS, P_POLAR, P_PREFIX, P_TAIL = 0.1, 0.25, 0.5, 0.75, 0.3, 0.3
P_SHAPES = (0.6, 0.85, 0.97)  # cumulative: one clause, "and", "but", "although"
# In the unlabelled corpus praise is mostly attributive ("a charming film") and criticism mostly
# predicative ("the plot was dull"): a cue to each adjective's polarity that masked-LM pretraining
# of a tiny model picks up within a few hundred steps (the labelled sets have no such bias).
CORPUS_FRAME_BIAS = 0.35


def pick(rng, xs):
    return xs[rng.integers(len(xs))]


def clause(rng, polarity, frame_bias=0.0):
    """One clause whose sentiment is `polarity` (+1/-1), with or without a negation."""
    negate = rng.random() < P_NEGATE
    word_pol = -polarity if negate else polarity
    adjs = POS_ADJ if word_pol > 0 else NEG_ADJ
    adj = pick(rng, adjs)
    if rng.random() < P_PAIR:  # a pair of adjectives of one polarity: "dull and lifeless"
        adj += f" and {pick(rng, [a for a in adjs if a != adj])}"
    past, base = pick(rng, POS_VERB if word_pol > 0 else NEG_VERB)
    subj, plural = pick(rng, SUBJECTS)
    inten = adv = ""
    if rng.random() < P_INTENS:
        polar = POS_INTENSIFIERS if word_pol > 0 else NEG_INTENSIFIERS
        inten = pick(rng, polar if rng.random() < P_POLAR else INTENSIFIERS) + " "
    if rng.random() < P_INTENS:
        polar = POS_VERB_ADVERBS if word_pol > 0 else NEG_VERB_ADVERBS
        adv = pick(rng, polar if rng.random() < P_POLAR else VERB_ADVERBS) + " "
    neg = pick(rng, ["not", "never"]) + " " if negate else ""
    r = rng.random() + frame_bias * word_pol
    if r < 0.35:  # predicative
        return f"{subj} {pick(rng, ['are', 'were'] if plural else ['is', 'was'])} {neg}{inten}{adj}"
    if r < 0.65:  # verb
        if not negate:
            return f"i {adv}{past} {subj}"
        if rng.random() < 0.5:
            return f"i did not {adv}{base} {subj}"
        return f"i never {adv}{past} {subj}"
    art = "an" if (inten or adj)[0] in "aeiou" else "a"  # attributive
    return f"it {pick(rng, ['is', 'was'])} {neg}{art} {inten}{adj} {pick(rng, GENRES)}"


def sentence(rng, frame_bias=0.0):
    """One sentence and its true polarity (+1/-1), the label before noise."""
    label = 1 if rng.random() < 0.5 else -1
    r = rng.random()
    if r < P_SHAPES[0]:
        text = clause(rng, label, frame_bias)
    elif r < P_SHAPES[1]:
        text = f"{clause(rng, label, frame_bias)} and {clause(rng, label, frame_bias)}"
    elif r < P_SHAPES[2]:  # contrast: the second clause decides
        text = f"{clause(rng, -label, frame_bias)} , but {clause(rng, label, frame_bias)}"
    else:
        text = f"although {clause(rng, -label, frame_bias)} , {clause(rng, label, frame_bias)}"
    if rng.random() < P_PREFIX:
        text = f"{pick(rng, PREFIXES)} {text}"
    text += " " + pick(rng, [".", ".", ".", "!"])
    if rng.random() < P_TAIL:
        text += f" i saw it {pick(rng, WHEN)} {pick(rng, WITH)} {pick(rng, WHERE)} ."
    return text, label


def generate(n, seed, noise=0.0, frame_bias=0.0):
    """`n` (sentence, label) pairs; a share `noise` of the labels flipped."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        text, pol = sentence(rng, frame_bias)
        label = int(pol > 0)
        if rng.random() < noise:
            label = 1 - label
        rows.append((text, label))
    return rows


def make_dataset():
    train = generate(N_TRAIN, seed=1, noise=LABEL_NOISE)
    dev = generate(N_DEV, seed=2, noise=LABEL_NOISE)
    corpus = [text for text, _ in generate(N_CORPUS, seed=3, frame_bias=CORPUS_FRAME_BIAS)]
    d = OUT / "sentiment"
    d.mkdir(parents=True, exist_ok=True)
    for name, rows in [("train", train), ("dev", dev)]:
        with open(d / f"{name}.tsv", "w", newline="\n") as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{text}\t{label}\n" for text, label in rows)
    (d / "README.md").write_text(
        "# Templated sentiment (quickstart)\n\n"
        f"{N_TRAIN} train and {N_DEV} dev movie-review-like sentences, TSV like GLUE SST-2 "
        "(columns `sentence`, `label`; 1 = positive),\nmade from templates by "
        "`scripts/make_quickstart.py`: negation (`not`, `never`) flips a clause, after "
        "`but`/`although`\nthe main clause decides, and "
        f"{LABEL_NOISE:.0%} of the labels are flipped at random.\n"
        "Made entirely by this project (synthetic, no third-party text); license: the "
        "repository's.\n")
    return train, dev, corpus


# ---------------------------------------------------------------------------------------------
# 2. Vocabulary

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
SUFFIXES = ["##s", "##es", "##ed", "##ing", "##ly", "##er", "##est", "##y"]


def make_vocab(texts):
    """Special tokens, the generator's words by frequency, then characters and a few suffixes."""
    counts = {}
    for text in texts:
        for w in text.split():
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w in counts if w not in PUNCT), key=lambda w: (-counts[w], w))
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    pieces = SUFFIXES + ["##" + c for c in chars]
    return list(dict.fromkeys(SPECIAL + words + chars + PUNCT + pieces))


def make_tokenizer(vocab, texts, tmp):
    """A BertTokenizer over `vocab`; prints how well it covers `texts`."""
    from transformers import BertTokenizer

    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    tok = BertTokenizer(str(tmp / "vocab.txt"), do_lower_case=True)
    ids = tok(texts, truncation=True, max_length=MAX_LEN)["input_ids"]
    n_tok = sum(len(x) for x in ids)
    n_unk = sum(x.count(tok.unk_token_id) for x in ids)
    n_trunc = sum(len(tok.tokenize(t)) + 2 > MAX_LEN for t in texts[:5000])
    print(f"vocab {len(tok.vocab)} tokens; {n_unk} [UNK] of {n_tok} tokens; "
          f"{n_trunc} of {min(len(texts), 5000)} sentences longer than {MAX_LEN} tokens; "
          f"example {tok.tokenize(texts[0])}")
    return tok


# ---------------------------------------------------------------------------------------------
# 3. Tiny seed suite: masked-LM pretraining


def bert_config(vocab_size):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                      type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, architectures=["BertForPreTraining"])


def encode(tok, texts):
    """Token ids padded to MAX_LEN (int64 tensor) and the attention mask."""
    enc = tok(texts, truncation=True, max_length=MAX_LEN, padding="max_length",
              return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def mask_tokens(ids, attn, tok, gen):
    """BERT masking of 15% of the tokens (not [CLS], [SEP], padding): 80% [MASK], 10% random,
    10% kept."""
    import torch

    special = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (attn == 0)
    chosen = (torch.rand(ids.shape, generator=gen) < 0.15) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.rand(ids.shape, generator=gen)
    inputs = ids.clone()
    inputs[chosen & (r < 0.8)] = tok.mask_token_id
    rand = chosen & (r >= 0.8) & (r < 0.9)
    inputs[rand] = torch.randint(len(SPECIAL), len(tok.vocab), ids.shape, generator=gen)[rand]
    return inputs, labels


def save_checkpoint(model, vocab, name):
    import torch

    d = OUT / "models" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    (d / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    (d / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": 64}, indent=2) + "\n")
    return d


def pretrain(seed, steps, snapshots, name, tok, vocab, corpus_ids, corpus_attn):
    """Pretrain one seed (initialisation, data order and masking from `seed`); save checkpoints."""
    import torch
    from transformers import BertForPreTraining

    torch.manual_seed(seed)
    model = BertForPreTraining(bert_config(len(vocab)))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    warmup = steps // 10
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, (steps - s) / (steps - warmup)))
    gen = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(corpus_ids), generator=gen)
                       for _ in range(steps * BATCH // len(corpus_ids) + 1)])
    saved, losses = [], []
    model.train()  # no dropout in this config: train and eval mode compute the same
    for step in range(steps + 1):
        if step in snapshots:
            saved.append(save_checkpoint(model, vocab, f"{name}-step_{step}"))
        if step == steps:
            break
        idx = order[step * BATCH:(step + 1) * BATCH]
        attn = corpus_attn[idx]
        attn = attn[:, :int(attn.sum(1).max())]  # pad to the longest in the batch
        inputs, labels = mask_tokens(corpus_ids[idx, :attn.shape[1]], attn, tok, gen)
        hidden = model.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
        masked = labels != -100  # the MLM head on the masked positions only (the same loss)
        logits = model.cls.predictions(hidden[masked])
        loss = torch.nn.functional.cross_entropy(logits, labels[masked])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    saved.append(save_checkpoint(model, vocab, name))
    print(f"{name}: {steps} steps, MLM loss {np.mean(losses[:20]):.2f} -> "
          f"{np.mean(losses[-20:]):.2f}")
    return saved


def make_models(tok, vocab, corpus):
    models = OUT / "models"
    if models.exists():
        shutil.rmtree(models)
    ids, attn = encode(tok, corpus)
    dirs = []
    for seed in SEEDS:
        snaps = SNAPSHOT_STEPS if seed in SNAPSHOT_SEEDS else ()
        dirs += pretrain(seed, STEPS, snaps, f"tiny-multiberts-seed_{seed}", tok, vocab, ids, attn)
    dirs += pretrain(BASELINE_SEED, BASELINE_STEPS, (), "tiny-bert-original", tok, vocab, ids, attn)
    return dirs


# ---------------------------------------------------------------------------------------------
# 4. Sanity check: linear probe on mean-pooled last-layer features


def features(model, tok, texts):
    """Mean over the non-padding tokens (with [CLS] and [SEP]) of the last layer."""
    import torch

    ids, attn = encode(tok, texts)
    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=attn).last_hidden_state
    m = attn.unsqueeze(-1).float()
    return ((h * m).sum(1) / m.sum(1)).numpy()


def sanity_check(dirs, tok, train, dev):
    from sklearn.linear_model import LogisticRegression
    from transformers import BertModel

    for d in dirs:
        model = BertModel.from_pretrained(d).eval()
        xtr, xdev = (features(model, tok, [t for t, _ in rows]) for rows in (train, dev))
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(xtr, [y for _, y in train])
        print(f"{d.name:36s} probe dev accuracy {clf.score(xdev, [y for _, y in dev]):.3f}")


def main():
    import tempfile

    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(1)
    t0 = time.time()
    train, dev, corpus = make_dataset()
    vocab = make_vocab([t for t, _ in train + dev] + corpus)
    with tempfile.TemporaryDirectory() as tmp:
        tok = make_tokenizer(vocab, [t for t, _ in train + dev] + corpus, Path(tmp))
    dirs = make_models(tok, vocab, corpus)
    (OUT / "models" / "README.md").write_text(models_readme())
    print(f"made {OUT} in {time.time() - t0:.0f} s")
    sanity_check(dirs, tok, train, dev)
    print(f"total {time.time() - t0:.0f} s")


def models_readme():
    lines = [
        "# Tiny seed suite (quickstart)", "",
        "Made by `.venv/bin/python scripts/make_quickstart.py` (deterministic). Tiny BERTs: "
        "uncased WordPiece vocabulary of the templated sentiment generator, hidden 64, 2 layers, "
        "4 heads, intermediate 128, max positions 64, no dropout. Pretrained with masked-LM only "
        "(15% masking, 80/10/10; the NSP head stays at its initialisation) on "
        f"{N_CORPUS} unlabelled sentences of the same generator (with praise mostly attributive, "
        f"criticism mostly predicative): AdamW lr {LR}, weight decay 0.01, batch {BATCH}, max "
        f"length {MAX_LEN}, 10% warm-up then linear decay to 0. The seed sets the initialisation, "
        "data order and masking. Laid out like `google/multiberts-seed_N`: `config.json`, "
        "`vocab.txt`, `tokenizer_config.json`, `pytorch_model.bin` (zip `torch.save` of the "
        "`BertForPreTraining` state dict: `bert.` prefix, MLM and NSP heads included, the decoder "
        "tied to the word embeddings).", "",
        "| directory | seed | pretraining steps |", "|---|---|---|"]
    for seed in SEEDS:
        lines.append(f"| `tiny-multiberts-seed_{seed}` | {seed} | {STEPS} (final) |")
        if seed in SNAPSHOT_SEEDS:
            lines += [f"| `tiny-multiberts-seed_{seed}-step_{k}` | {seed} | {k}"
                      f"{' (random initialisation)' if k == 0 else ''} |" for k in SNAPSHOT_STEPS]
    lines.append(f"| `tiny-bert-original` | {BASELINE_SEED} | {BASELINE_STEPS} (the one-seed "
                 "baseline, trained twice as long) |")
    lines += ["", "Made entirely by this project (synthetic); license: the repository's."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
