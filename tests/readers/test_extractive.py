"""Extractive reader: windows, span decoding, loading, ranking across passages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from odqa.errors import ModelNotAvailableError, OdqaError
from odqa.readers.extractive import ExtractiveReader, PassageSpans, ReaderParams, load_qa_model
from odqa.readers.ranking import rank_answers, scaled_retriever_scores
from odqa.readers.spans import top_spans
from odqa.readers.windows import encode_question
from odqa.text import normalize_answer
from odqa.types import Hit

from tiny_models import make_bert_tokenizer, save_tiny_bert, tiny_bert_config

FILLER = "the old river of the north city was built in the year 1066 by the king . "


def save_peaked_qa(folder: Path, start_word: str = "paris", end_word: str = "france") -> Path:
    """A BERT QA model whose start logit peaks on ``start_word``, end logit on ``end_word``, and
    whose no-answer (CLS) score beats every span.

    Attention and feed-forward outputs are zeroed so each hidden state is the layer-normalised
    embedding of its own token; the marker tokens get one-hot embeddings the QA head reads.
    """
    from transformers import BertForQuestionAnswering

    tokenizer = make_bert_tokenizer(folder)
    vocab = tokenizer.get_vocab()
    model = BertForQuestionAnswering(tiny_bert_config(len(vocab))).eval()
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
        emb = model.bert.embeddings
        for table in (emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings):
            table.weight.zero_()
        emb.word_embeddings.weight[vocab[start_word], 0] = 1.0
        emb.word_embeddings.weight[vocab[end_word], 1] = 1.0
        emb.word_embeddings.weight[vocab["[CLS]"], 2] = 1.0
        head = model.qa_outputs
        head.weight.zero_()
        head.bias.zero_()
        head.weight[0, 0], head.weight[1, 1] = 10.0, 10.0
        head.weight[0, 2], head.weight[1, 2] = 30.0, 30.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def random_qa(tmp_path_factory) -> str:
    """Its own folder: runtimes are cached per model path, and these tests check the export."""
    return str(save_tiny_bert(tmp_path_factory.mktemp("random-qa"), "BertForQuestionAnswering"))


@pytest.fixture(scope="module")
def peaked_qa(tmp_path_factory) -> str:
    return str(save_peaked_qa(tmp_path_factory.mktemp("peaked-qa")))


def small(**overrides) -> ReaderParams:
    settings = dict(max_seq_length=48, doc_stride=16, max_answer_length=12, batch_size=4)
    settings.update(overrides)
    return ReaderParams(device="cpu", **settings)


def hits_for(texts: list[str], scores: list[float] | None = None) -> list[Hit]:
    scores = scores or [float(len(texts) - i) for i in range(len(texts))]
    return [
        Hit(f"p{i}", f"d{i}", s, i + 1, f"T{i}", t) for i, (t, s) in enumerate(zip(texts, scores))
    ]


# --- span mapping exactness -------------------------------------------------------------------

UNUSUAL = (
    "Café\u00a0au  lait\t\tñandú 🙂 ne\u0301e  «PARIS»\u2003is\n\n"
    " the capital\u3000of   FRANCE, ok."
)


@pytest.mark.parametrize(
    ("passage", "windows_before"),
    [
        ("the capital paris is the city of france and more", 0),
        (FILLER * 3 + "paris is in the north of france . " + FILLER * 4, 1),
        (FILLER * 5 + "paris is in the north of france . " + FILLER * 2, 2),
        (UNUSUAL, 0),
        (FILLER * 4 + UNUSUAL + " " + FILLER, 3),
    ],
    ids=["short", "second-window", "third-window", "unicode", "unicode-long"],
)
def test_peaked_span_is_exact(peaked_qa, passage, windows_before):
    lower = passage.lower()
    start, end = lower.index("paris"), lower.index("france") + len("france")
    params = small()
    reader = ExtractiveReader(peaked_qa, params)
    (spans,) = reader.read(["what city ?"], [[passage]])[0]
    assert (int(spans.starts[0]), int(spans.ends[0])) == (start, end)
    answers = rank_answers(hits_for([passage]), [spans], top=1, score="reader")
    assert answers[0].text == passage[start:end]
    assert answers[0].context[answers[0].start : answers[0].end] == answers[0].text
    _, tokenizer = load_qa_model(peaked_qa, "cpu")
    windows = encode_question(
        tokenizer,
        "what city ?",
        [passage],
        first_pair=0,
        max_seq_length=params.max_seq_length,
        doc_stride=params.doc_stride,
    )
    holding = [
        i
        for i, w in enumerate(windows)
        if (w.offsets[w.context, 0] == start).any() and (w.offsets[w.context, 1] == end).any()
    ]
    assert holding and holding[0] == windows_before


def test_top_spans_respects_band_and_context():
    start = torch.tensor([[9.0, 1.0, 5.0, 0.0, 3.0, 0.0]])
    end = torch.tensor([[9.0, 0.0, 0.0, 4.0, 0.0, 8.0]])
    context = torch.tensor([[False, True, True, True, True, True]])
    spans = top_spans(start, end, context, torch.tensor([0]), max_answer_length=2, n_best=3)
    got = {
        (int(s), int(e)): float(v)
        for s, e, v in zip(spans.starts[0], spans.ends[0], spans.scores[0])
    }
    assert got == {(4, 5): 11.0, (2, 3): 9.0, (5, 5): 8.0}  # (0, 0) is outside the passage
    assert spans.null_scores[0] == 18.0


# --- agreement with a per-window reference ----------------------------------------------------


def reference_best_span(model, tokenizer, question, passage, params):
    """Straightforward reference: one pair, each window forwarded alone, every span enumerated."""
    enc = tokenizer(
        question,
        passage,
        truncation="only_second",
        max_length=params.max_seq_length,
        stride=params.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    best = (-np.inf, None)
    for w in range(len(enc["input_ids"])):
        inputs = {
            k: torch.tensor([enc[k][w]]) for k in ("input_ids", "token_type_ids", "attention_mask")
        }
        with torch.no_grad():
            out = model(**inputs)
        s, e = out.start_logits[0].tolist(), out.end_logits[0].tolist()
        seq, offsets = enc.sequence_ids(w), enc["offset_mapping"][w]
        for i in range(len(s)):
            for j in range(i, min(len(s), i + params.max_answer_length)):
                if seq[i] == 1 and seq[j] == 1 and s[i] + e[j] > best[0]:
                    best = (s[i] + e[j], (offsets[i][0], offsets[j][1]))
    return best


def test_agrees_with_per_window_reference(random_qa):
    params = small(max_answer_length=8, batch_size=3)
    passages = [FILLER * n + "paris is the capital of france ." for n in (1, 3, 6)]
    questions = ["what is the capital of france ?", "who built the city ?"]
    reader = ExtractiveReader(random_qa, params)
    read = reader.read(questions, [passages, passages[::-1]])
    model, tokenizer = load_qa_model(random_qa, "cpu")
    for question, texts, spans in zip(questions, [passages, passages[::-1]], read):
        refs = [reference_best_span(model, tokenizer, question, t, params) for t in texts]
        for (score, chars), got in zip(refs, spans):
            assert (int(got.starts[0]), int(got.ends[0])) == chars
            assert float(got.scores[0]) == pytest.approx(score, abs=1e-4)
        top = rank_answers(hits_for(texts), spans, top=1, score="reader")[0]
        best_score, (s, e) = max(refs, key=lambda r: r[0])
        assert top.text == texts[int(np.argmax([r[0] for r in refs]))][s:e]
        assert top.score == pytest.approx(best_score, abs=1e-4)


def test_spans_lie_inside_passages_and_are_sorted(random_qa):
    passages = [FILLER * 4, "paris", "", "the king ."]
    (read,) = ExtractiveReader(random_qa, small(n_best=5)).read(["who ?"], [passages])
    assert len(read) == len(passages)
    for text, spans in zip(passages, read):
        assert ((spans.starts >= 0) & (spans.starts < spans.ends) & (spans.ends <= len(text))).all()
        assert (np.diff(spans.scores) <= 0).all()
        assert len({(s, e) for s, e in zip(spans.starts, spans.ends)}) == len(spans.starts)
    assert len(read[2].scores) == 0
    assert len(read[0].scores) > 5  # several windows, n_best each, merged


def test_batch_equals_one_by_one(random_qa):
    questions = ["what is the capital ?", "who built the old city in the north ?", "when ?"]
    passages = [[FILLER * 3, "paris is in france ."], [FILLER], [FILLER * 2, "one two", "x"]]
    reader = ExtractiveReader(random_qa, small(batch_size=5))
    together = reader.read(questions, passages)
    for q, p, batched in zip(questions, passages, together):
        (alone,) = ExtractiveReader(random_qa, small(batch_size=1)).read([q], [p])
        for a, b in zip(alone, batched):
            assert np.array_equal(a.starts[:3], b.starts[:3])
            assert np.array_equal(a.ends[:3], b.ends[:3])
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


# --- no answer --------------------------------------------------------------------------------


def test_no_answer_threshold(peaked_qa):
    passages = ["paris is the capital of france .", "the king was born in london ."]
    (spans,) = ExtractiveReader(peaked_qa, small()).read(["what city ?"], [passages])
    assert spans[0].null_score > spans[0].scores[0]  # CLS outscores every span
    hits = hits_for(passages)
    assert rank_answers(hits, spans, top=3)  # no threshold: SQuAD 1.1 behaviour
    assert rank_answers(hits, spans, top=3, no_answer_threshold=0.0) == []
    lenient = rank_answers(hits, spans, top=3, no_answer_threshold=-1e4)
    assert lenient[0].text == "paris is the capital of france"


# --- ranking across passages ------------------------------------------------------------------


def test_best_passage_wins_across_passages(peaked_qa):
    passages = [
        FILLER,
        "the king was born in london .",
        FILLER * 3 + "paris , north of france .",
        "",
    ]
    (spans,) = ExtractiveReader(peaked_qa, small()).read(["what city ?"], [passages])
    answers = rank_answers(hits_for(passages), spans, top=3, score="reader")
    assert answers[0].passage_id == "p2"
    assert answers[0].text == "paris , north of france"
    assert answers[0].confidence > 0.99
    assert all(a.passage_id != "p3" for a in answers)


def spans_of(text: str, found: list[tuple[str, float]], null: float = -5.0) -> PassageSpans:
    starts = np.array([text.index(s) for s, _ in found], dtype=np.int64)
    return PassageSpans(
        starts=starts,
        ends=starts + np.array([len(s) for s, _ in found]),
        scores=np.array([v for _, v in found], dtype=np.float32),
        null_score=null,
    )


TEXTS = [
    "The Eiffel Tower stands in Paris.",
    "Gustave Eiffel built the eiffel tower in 1889.",
    "Paris is the capital of France.",
]


def candidate_spans():
    return [
        spans_of(TEXTS[0], [("The Eiffel Tower", 4.0), ("Paris", 2.0), (".", 9.0)]),
        spans_of(TEXTS[1], [("eiffel tower", 5.0), ("1889", 4.5)]),
        spans_of(TEXTS[2], [("Paris", 1.0), ("France", 3.0)]),
    ]


def test_ranking_merges_duplicates_and_orders_globally():
    spans = candidate_spans()
    answers = rank_answers(hits_for(TEXTS), spans, top=10, score="reader")
    assert [a.text for a in answers] == ["eiffel tower", "1889", "France", "Paris"]
    assert [a.rank for a in answers] == [1, 2, 3, 4]
    tower = answers[0]
    assert (tower.passage_id, tower.score) == ("p1", 5.0)
    assert tower.context[tower.start : tower.end] == tower.text
    pool = np.array([4.0, 2.0, 9.0, 5.0, 4.5, 1.0, 3.0])
    prob = np.exp(pool - pool.max()) / np.exp(pool - pool.max()).sum()
    assert tower.confidence == pytest.approx(prob[0] + prob[3])
    assert answers[3].confidence == pytest.approx(prob[1] + prob[5])
    assert answers[3].passage_id == "p0"  # best "Paris" span is kept as evidence
    assert all(0.0 <= a.confidence <= 1.0 for a in answers)
    assert sum(a.confidence for a in answers) <= 1.0
    assert len({normalize_answer(a.text) for a in answers}) == len(answers)
    two = rank_answers(hits_for(TEXTS), spans, top=2, score="reader")
    assert [a.text for a in two] == ["eiffel tower", "1889"]


def test_combined_score_uses_scaled_retriever_scores():
    spans = candidate_spans()
    hits = hits_for(TEXTS, scores=[12.0, 2.0, 7.0])
    scaled = scaled_retriever_scores(hits)
    np.testing.assert_allclose(scaled, [1.0, 0.0, 0.5])
    answers = rank_answers(hits, spans, top=3, score="combined", retriever_weight=4.0)
    assert [a.text for a in answers] == ["The Eiffel Tower", "Paris", "France"]
    assert answers[0].score == pytest.approx(8.0)
    assert answers[1].passage_id == "p0"
    with pytest.raises(OdqaError, match="reader, combined"):
        rank_answers(hits, spans, score="mixed")


def test_ranking_ties_are_deterministic():
    text = "alpha beta gamma"
    spans = [spans_of(text, [("gamma", 1.0), ("alpha", 1.0), ("beta", 1.0)])]
    answers = rank_answers(hits_for([text]), spans, top=3, score="reader")
    assert [a.text for a in answers] == ["alpha", "beta", "gamma"]


# --- loading and failure paths ----------------------------------------------------------------


def test_missing_model_path_is_reported():
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        ExtractiveReader("./no/such/reader", small()).warm_up()


def test_unloadable_model_names_the_flag(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelNotAvailableError, match="--reader PATH"):
        ExtractiveReader(str(tmp_path / "broken"), small()).warm_up()


def test_model_without_qa_head_is_rejected(tmp_path):
    folder = save_tiny_bert(tmp_path / "plain", "BertModel")
    with pytest.raises(ModelNotAvailableError, match="not an extractive question-answering"):
        ExtractiveReader(str(folder), small()).warm_up()


def test_bad_settings_are_reported(random_qa):
    with pytest.raises(OdqaError, match="--max-seq-length"):
        ExtractiveReader(random_qa, small(max_seq_length=8)).read(
            ["what is the capital city of the north ?"], [["paris"]]
        )
    with pytest.raises(OdqaError, match="--doc-stride"):
        ReaderParams(doc_stride=-1)
    with pytest.raises(OdqaError, match="--batch-size"):
        ReaderParams(batch_size=0)


# --- runtimes ---------------------------------------------------------------------------------


def test_torch_precision_auto_follows_native_bf16(monkeypatch) -> None:
    from odqa.readers.extractive import resolve_precision
    from odqa.runtime import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize(
    ("backend", "precision", "atol"),
    [("onnx", "fp32", 1e-4), ("int8", "fp32", 0.05), ("torch", "bf16", 0.05)],
)
def test_other_runtimes_agree_with_torch(
    random_qa, tmp_path, monkeypatch, backend, precision, atol
):
    monkeypatch.setenv("ODQA_CACHE", str(tmp_path))
    passages = [[FILLER * 3 + "paris is the capital of france .", "the king was born ."]]
    torch_reader = ExtractiveReader(random_qa, small(backend="torch", precision="fp32"))
    (expected,) = torch_reader.read(["what is the capital ?"], passages)
    other = ExtractiveReader(random_qa, small(backend=backend, precision=precision))
    (got,) = other.read(["what is the capital ?"], passages)
    for e, g in zip(expected, got):
        assert len(g.scores) == len(e.scores)
        np.testing.assert_allclose(np.sort(g.scores), np.sort(e.scores), atol=atol)
        if backend == "onnx":
            assert np.array_equal(e.starts, g.starts) and np.array_equal(e.ends, g.ends)
    if backend != "torch":
        assert list(tmp_path.rglob("*.onnx"))  # exported once into the cache


def test_unknown_runtime_settings_are_reported():
    with pytest.raises(OdqaError, match="torch, onnx, int8"):
        ReaderParams(backend="tensorrt")
    with pytest.raises(OdqaError, match="auto, fp32, fp16, bf16"):
        ReaderParams(precision="int4")
