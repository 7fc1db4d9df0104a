"""The torch-free runtime pieces: the Rust tokenizer adapter against transformers, span decoding
in numpy against brute force, export fingerprints, precision choice, bf16 encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odqa.encoders import TextEncoder, inspect_encoder
from odqa.errors import OdqaError
from odqa.readers.spans import top_spans
from odqa.readers.windows import encode_pairs
from odqa.runtime import hardware, onnx
from odqa.runtime.fast_tokenizer import FastTokenizer
from odqa.runtime.hub import DEFAULT_DENSE_ENCODER, resolve_model

from tiny_models import save_sentence_transformers, save_tiny_bert

PASSAGE = (
    "The tower was built in 1889 by the king of France, and it is the largest tower in Paris. "
    "Gödel's café on the river bank (north of the bridge) opened in 1990; it closed in 2020! "
) * 6
QUESTIONS = ["who built the tower?", "when did the café open", "x " * 90, "what"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def hf_tokenizer(folder: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def window_fields(windows) -> list[tuple]:
    return [
        (w.pair, w.cls, w.input_ids.tolist(),
         None if w.token_type_ids is None else w.token_type_ids.tolist(),
         w.context.tolist(), w.offsets.tolist())
        for w in windows
    ]  # fmt: skip


@pytest.mark.parametrize("model", ["tiny", "minilm"])
def test_reader_windows_are_identical_to_the_transformers_tokenizer(
    model: str, tiny_folder: Path, tmp_path: Path
) -> None:
    folder = tiny_folder if model == "tiny" else resolve_model(DEFAULT_DENSE_ENCODER)
    reference = hf_tokenizer(folder)
    FastTokenizer.from_transformers(reference).save(tmp_path)
    fast = FastTokenizer.load(tmp_path)
    passages = [PASSAGE, "paris", PASSAGE[:300], ""]
    for length, stride in ((64, 16), (384, 128)):
        settings = dict(max_seq_length=length, doc_stride=stride, max_question_tokens=12)
        expected = encode_pairs(reference, QUESTIONS, passages, **settings)
        got = encode_pairs(fast, QUESTIONS, passages, **settings)
        assert len(expected) > len(passages) or length == 384  # long passages overflow at 64
        assert window_fields(got) == window_fields(expected)


def test_encoder_tokens_match_for_texts_and_pairs(tiny_folder: Path) -> None:
    reference = hf_tokenizer(tiny_folder)
    fast = FastTokenizer.from_transformers(reference)
    texts = [q.strip() for q in QUESTIONS] + [PASSAGE]
    settings = dict(
        truncation="longest_first", max_length=24, padding=False,
        return_attention_mask=False, return_token_type_ids=True,
    )  # fmt: skip
    for pairs in (None, [PASSAGE] * len(texts)):
        expected, got = reference(texts, pairs, **settings), fast(texts, pairs, **settings)
        assert got["input_ids"] == expected["input_ids"]
        assert got["token_type_ids"] == expected["token_type_ids"]
        assert max(len(row) for row in got["input_ids"]) == 24
    with pytest.raises(ValueError, match="max_length"):
        fast(texts, truncation=True)


def test_top_spans_is_the_exact_best_of_the_band() -> None:
    rng = np.random.default_rng(1)
    start, end = rng.normal(size=(2, 4, 30)).astype(np.float32)
    context = np.ones((4, 30), dtype=bool)
    context[:, :5] = False
    context[3, 20:] = False
    cls = np.zeros(4, dtype=np.int64)
    spans = top_spans(start, end, context, cls, max_answer_length=6, n_best=7)
    for b in range(4):
        valid = np.flatnonzero(context[b])
        brute = sorted(
            (-(start[b, i] + end[b, j]), i, j)
            for i in valid for j in valid if i <= j < i + 6
        )[:7]  # fmt: skip
        assert list(zip(spans.starts[b], spans.ends[b])) == [(i, j) for _, i, j in brute]
        np.testing.assert_allclose(spans.scores[b], [-s for s, _, _ in brute], rtol=1e-6)
    np.testing.assert_allclose(spans.null_scores, start[:, 0] + end[:, 0])


def test_top_spans_pads_with_minus_infinity_when_few_spans_exist() -> None:
    start = end = np.zeros((1, 3), dtype=np.float32)
    context = np.array([[False, True, True]])
    spans = top_spans(start, end, context, np.array([0]), max_answer_length=5, n_best=20)
    assert np.isfinite(spans.scores[0]).sum() == 3  # (1,1), (1,2), (2,2)
    assert spans.scores.shape == (1, 9)


def test_fingerprint_follows_the_model_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    first = onnx.fingerprint([tmp_path], "qa")
    assert onnx.fingerprint([tmp_path], "qa") == first
    assert onnx.fingerprint([tmp_path], "encoder") != first
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert onnx.fingerprint([tmp_path], "qa") != first


def test_precision_auto_is_bf16_only_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert hardware.resolve_precision("auto", "cpu") == "bf16"  # Zen 4: 1.65-1.78x fp32, measured
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert hardware.resolve_precision("auto", "cpu") == "fp32"  # bf16 emulated: slower
    assert hardware.resolve_precision("auto", "cuda") == "fp16"
    assert hardware.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(OdqaError, match="fp16 needs CUDA"):
        hardware.resolve_precision("fp16", "cpu")
    with pytest.raises(OdqaError, match="auto, fp32, bf16, fp16"):
        hardware.resolve_precision("int4", "cpu")


def test_training_reads_the_same_bf16_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    from odqa.training import loop

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert loop.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    assert loop.resolve_precision("auto", "cpu") == "fp32"
    assert loop.resolve_precision("fp32", "cpu") == "fp32"


def test_cuda_is_never_reported_impossible_where_torch_has_it() -> None:
    import torch

    assert hardware.cuda_possible() or not torch.cuda.is_available()
    if torch.version.cuda is None:
        assert not hardware.cuda_possible()


def test_bf16_encoder_stays_close_to_fp32(tmp_path: Path) -> None:
    spec = inspect_encoder(str(save_sentence_transformers(tmp_path / "st")))
    texts = [q.strip() for q in QUESTIONS] + [PASSAGE]
    fp32 = TextEncoder(spec, device="cpu", precision="fp32")
    bf16 = TextEncoder(spec, device="cpu", precision="bf16")
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert (fp32.runtime_precision, bf16.runtime_precision) == ("fp32", "bf16")
    assert b.dtype == np.float32 and not np.array_equal(a, b)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99
    with pytest.raises(OdqaError, match="--backend torch"):
        TextEncoder(spec, backend="onnx", device="cpu", precision="bf16").warm_up()
