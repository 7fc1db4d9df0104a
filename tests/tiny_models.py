"""Tiny random Hugging Face models and tokenizers built from inline vocabularies, for tests.

Nothing is downloaded: configs are written by hand, weights are random (seeded), tokenizers are
built from a word list. Save them with ``save_pretrained`` and load them back through odqa.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = (
    "the a an of in on at to is was are were be by for with and or from as that this which who "
    "what when where why how did does do many much year city river country capital king queen "
    "war born died built founded called named first largest new old north south east west paris "
    "france london england berlin germany rome italy tokyo japan water energy light sun moon earth "
    "planet star music piano violin composer painter museum tower bridge church university "
    "school science physics chemistry biology computer language python river mountain lake ocean "
    "one two three four five six seven eight nine ten hundred thousand million 1066 1889 1990 "
    "2001 2020 he she it they his her its their has have had not no yes can could would also more "
    "most than about after before during between into over under up down out . , ? ! ' - ( ) ;"
).split()

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocab(extra: list[str] | None = None) -> list[str]:
    """Special tokens, the inline word list, single characters and '##' continuations."""
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789")
    vocab = SPECIAL + WORDS + chars + ["##" + c for c in chars] + list(extra or [])
    seen: set[str] = set()
    return [t for t in vocab if not (t in seen or seen.add(t))]


def make_bert_tokenizer(folder: Path, extra: list[str] | None = None):
    """Write ``vocab.txt`` to ``folder`` and return a fast BERT tokenizer built from it."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokens = wordpiece_vocab(extra)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    vocab = {token: i for i, token in enumerate(tokens)}
    try:  # transformers >= 5 takes the vocabulary itself
        return BertTokenizerFast(vocab=vocab, do_lower_case=True)
    except TypeError:  # transformers 4.x takes a vocab file
        return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)


def tiny_bert_config(vocab_size: int, **overrides):
    """A 2-layer, 32-wide BERT config."""
    from transformers import BertConfig

    settings = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def save_tiny_bert(
    folder: Path, model_class: str = "BertModel", seed: int = 0, **overrides
) -> Path:
    """Build a random tiny BERT of ``model_class`` (e.g. ``BertForQuestionAnswering``) and save it
    with its tokenizer to ``folder``; return the folder."""
    import torch
    import transformers

    tokenizer = make_bert_tokenizer(folder)
    torch.manual_seed(seed)
    config = tiny_bert_config(len(tokenizer), **overrides)
    model = getattr(transformers, model_class)(config)
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def t5_vocab() -> list[tuple[str, float]]:
    """Unigram pieces with log-probability scores: specials, '▁word' pieces, single characters."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    chars += [c.upper() for c in chars] + list("0123456789.,?!'-();:")
    pieces = [(p, score) for p, score in specials]
    pieces += [("▁" + w, -5.0) for w in WORDS]
    pieces += [(p, -10.0) for c in chars for p in (c, "▁" + c)]
    seen: set[str] = set()
    return [(p, s) for p, s in pieces if not (p in seen or seen.add(p))]


def make_t5_tokenizer(folder: Path):
    """Save to ``folder`` and return a fast T5 (Unigram) tokenizer built from :func:`t5_vocab`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    folder.mkdir(parents=True, exist_ok=True)
    vocab = t5_vocab()
    try:  # transformers >= 5 builds the Unigram model from the scored pieces itself
        from transformers import T5Tokenizer

        tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    except TypeError:  # transformers 4.x: wrap a tokenizers object
        from transformers import T5TokenizerFast

        backend = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁")
        backend.decoder = decoders.Metaspace(replacement="▁")
        backend.post_processor = processors.TemplateProcessing(
            single=["$A", "</s>"], special_tokens=[("</s>", 1)]
        )
        tokenizer = T5TokenizerFast(tokenizer_object=backend, extra_ids=0)
    tokenizer.save_pretrained(folder)
    return tokenizer


def tiny_t5_config(vocab_size: int, **overrides):
    """A 2-layer (encoder and decoder), 32-wide T5 config with T5's special token ids."""
    from transformers import T5Config

    settings = dict(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    settings.update(overrides)
    return T5Config(**settings)


def save_tiny_t5(folder: Path, seed: int = 0, **overrides) -> Path:
    """Build a random tiny ``T5ForConditionalGeneration`` and save it with its tokenizer to
    ``folder``; return the folder."""
    import torch
    from transformers import T5ForConditionalGeneration

    tokenizer = make_t5_tokenizer(folder)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(tiny_t5_config(len(tokenizer), **overrides))
    model.eval()
    model.save_pretrained(folder)
    return folder


def save_sentence_transformers(folder: Path, pooling: str = "mean", max_length: int = 48) -> Path:
    """A tiny BERT with modules.json, 1_Pooling/config.json, sentence_bert_config.json and a
    Normalize module, laid out as sentence-transformers saves models."""
    save_tiny_bert(folder, "BertModel", seed=3)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    modes = {f"pooling_mode_{m}": False for m in ("cls_token", "mean_tokens", "max_tokens")}
    key = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens"}[pooling]
    modes[f"pooling_mode_{key}"] = True
    pooling_config = {
        "word_embedding_dimension": 32,
        **modes,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    st_config = {"max_seq_length": max_length, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_config))
    return folder


def save_dpr_pair(root: Path) -> tuple[Path, Path]:
    """Tiny random DPRQuestionEncoder and DPRContextEncoder folders (question, context)."""
    import torch
    from transformers import DPRConfig, DPRContextEncoder, DPRQuestionEncoder

    folders = []
    for seed, (name, model_class) in enumerate(
        [("question", DPRQuestionEncoder), ("context", DPRContextEncoder)]
    ):
        folder = root / f"dpr-{name}"
        tokenizer = make_bert_tokenizer(folder)
        torch.manual_seed(10 + seed)
        config = DPRConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        model = model_class(config).eval()
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders.append(folder)
    return folders[0], folders[1]
