"""Phrase retrieval end to end on tiny models: training, the DensePhrases layout, the index,
span rules, `odqa ask --mode phrase` and `odqa search --retriever phrase`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa.cli import app

from conftest import SAMPLE_CORPUS

pytestmark = pytest.mark.usefixtures("one_thread")

QUESTION = "Who received a patent for the telephone?"


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_train(path: Path) -> Path:
    rows = []
    for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:12]:
        doc = json.loads(line)
        words = doc["text"].split()
        answer = words[2]
        start = doc["text"].index(answer)
        rows.append({"question": f"what is {words[0]} {words[1]}?", "context": doc["text"],
                     "title": doc["title"], "answers": [{"text": answer, "answer_start": start}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("phrase-base"), "BertModel")


@pytest.fixture(scope="module")
def phrase_model(tiny_base, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("phrase")
    train = write_train(folder / "train.jsonl")
    out = folder / "model"
    result = cli("train", "phrase", train, "--out", out, "--base", tiny_base, "--epochs", "1",
                 "--batch-size", "4", "--precision", "fp32", "--device", "cpu",
                 "--max-seq-length", "128")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def phrase_index(phrase_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phrase-index") / "idx"
    result = cli("index", SAMPLE_CORPUS, "--out", out, "--retrievers", "bm25,phrase",
                 "--phrase-encoder", phrase_model, "--phrase-index", "flat",
                 "--phrase-filter-threshold", "-1000", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    return out


def test_training_record_and_layout(phrase_model):
    record = json.loads((phrase_model / "odqa_training.json").read_text())
    assert record["kind"] == "phrase" and record["finished"] and record["steps"] == 3
    assert (phrase_model / "odqa_phrase.json").is_file()
    assert (phrase_model / "model.safetensors").is_file()


def test_index_records_what_it_kept(phrase_index):
    manifest = json.loads((phrase_index / "manifest.json").read_text())
    section = manifest["families"]["phrase"]
    assert section["kept_share"] == pytest.approx(1.0, abs=0.05)  # threshold keeps every token
    assert section["tokens"] == section["start_candidates"] == section["end_candidates"]
    tokens = np.load(phrase_index / "phrase" / "tokens.npy")
    assert len(tokens) == section["tokens"]
    assert np.all(np.diff(tokens[:, 0]) >= 0)  # passage order


def test_ask_phrase_returns_spans_inside_passages(phrase_index):
    result = cli("ask", QUESTION, "--index", phrase_index, "--mode", "phrase", "--format",
                 "jsonl", "--top", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["mode"] == "phrase" and 1 <= len(record["answers"]) <= 3
    for a in record["answers"]:
        assert a["context"][a["start"] : a["end"]] == a["text"]
        assert a["passage_id"] and 0 < a["confidence"] <= 1
    scores = [a["score"] for a in record["answers"]]
    assert scores == sorted(scores, reverse=True)


def test_ask_phrase_rejects_reader_options(phrase_index):
    result = cli("ask", QUESTION, "--index", phrase_index, "--mode", "phrase", "--passages", "5")
    assert result.exit_code == 2


def test_search_phrase_ranks_passages(phrase_index):
    result = cli("search", QUESTION, "--index", phrase_index, "--retriever", "phrase", "-k", "4",
                 "--format", "jsonl")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 4 and len({h["id"] for h in hits}) == 4
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def brute_force_best(index, qs, qe, max_len):
    best = (-np.inf, None)
    start = np.asarray(index.start, dtype=np.float32) @ qs
    end = np.asarray(index.end, dtype=np.float32) @ qe
    for i in range(len(index.tokens)):
        for j in range(i, min(len(index.tokens), i + max_len)):
            if index.passage_of[j] != index.passage_of[i]:
                break
            if index.position[j] - index.position[i] < max_len and start[i] + end[j] > best[0]:
                best = (start[i] + end[j], (i, j))
    return best


def test_span_search_is_exact_and_follows_the_rules(phrase_index):
    from odqa import load_index

    index = load_index(str(phrase_index))
    retriever = index.retriever("phrase", max_answer_length=4, device="cpu")
    qs, qe = retriever.encoder.encode_queries([QUESTION])
    phrase = retriever.index
    spans = phrase.spans(qs, qe, candidates=len(phrase.tokens), max_answer_length=4, top=50)[0]
    for t_start, t_end, _ in spans:
        t_start, t_end = int(t_start), int(t_end)
        assert phrase.passage_of[t_start] == phrase.passage_of[t_end]
        assert 0 <= phrase.position[t_end] - phrase.position[t_start] < 4
    score, (i, j) = brute_force_best(phrase, qs[0], qe[0], 4)
    assert (int(spans[0][0]), int(spans[0][1])) == (i, j)
    assert spans[0][2] == pytest.approx(score, rel=1e-5)


def save_densephrases_layout(folder: Path, tiny_base: Path, binary: bool) -> Path:
    import shutil

    import torch
    from safetensors.torch import save_file
    from transformers import BertModel

    shutil.copytree(tiny_base, folder)
    (folder / "model.safetensors").unlink()
    state = {}
    for seed, part in enumerate(("phrase_encoder", "query_start_encoder", "query_end_encoder")):
        torch.manual_seed(seed)
        model = BertModel(BertModel.config_class.from_pretrained(str(tiny_base)),
                          add_pooling_layer=False)
        state.update({f"{part}.{k}": v.contiguous() for k, v in model.state_dict().items()})
    state["filter_linear.weight"] = torch.randn(2, 32)
    state["filter_linear.bias"] = torch.zeros(2)
    if binary:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("binary", [False, True])
def test_densephrases_layout_splits_by_prefix(tiny_base, tmp_path, binary):
    import torch
    from transformers import AutoTokenizer, BertModel

    from odqa.phrase.model import load_phrase_model

    folder = save_densephrases_layout(tmp_path / "dp", tiny_base, binary)
    model, _ = load_phrase_model(str(folder))
    assert model.config.layout == "densephrases" and not model.config.heads
    enc = AutoTokenizer.from_pretrained(str(folder))(["who built the tower ?"],
                                                      return_tensors="pt")
    torch.manual_seed(1)
    reference = BertModel(BertModel.config_class.from_pretrained(str(tiny_base)),
                          add_pooling_layer=False).eval()
    with torch.no_grad():
        q_start, q_end = model.encode_queries(**enc)
        expected = reference(**enc).last_hidden_state[:, 0]
        start, end, _, _ = model.encode_phrases(**enc)
    torch.testing.assert_close(q_start, expected)
    assert not torch.allclose(q_start, q_end)
    assert torch.equal(start, end)  # one vector for start and end


def test_densephrases_checkpoint_with_wrong_shapes_is_one_error(tiny_base, tmp_path):
    from safetensors.torch import load_file, save_file

    from odqa.errors import ModelNotAvailableError
    from odqa.phrase.model import load_phrase_model

    folder = save_densephrases_layout(tmp_path / "dp", tiny_base, False)
    state = load_file(str(folder / "model.safetensors"))
    state["filter_linear.weight"] = state["filter_linear.weight"][:, :8].contiguous()
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelNotAvailableError, match=r"filter_linear\.weight"):
        load_phrase_model(str(folder))


def test_phrase_delta_folder_round_trip(tiny_base, tmp_path):
    from transformers import AutoTokenizer

    from odqa.phrase.model import load_phrase_model
    from odqa.training.loop import LoopConfig
    from odqa.training.phrase import PhraseTrainParams
    from odqa.training.run_phrase import train_phrase

    out = tmp_path / "delta"
    record = train_phrase([write_train(tmp_path / "t.jsonl")], out,
                          PhraseTrainParams(base=str(tiny_base), max_length=128),
                          LoopConfig(batch_size=4, precision="fp32", device="cpu"),
                          save="delta", progress=False)
    assert record["finished"] and (out / "delta.safetensors").is_file()
    assert not (out / "tokenizer.json").exists()  # a delta takes its base's tokenizer
    model, tokenizer = load_phrase_model(str(out))
    assert model.config.delta and model.config.base == str(tiny_base)
    base_tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    assert tokenizer(QUESTION)["input_ids"] == base_tokenizer(QUESTION)["input_ids"]


def test_eval_phrase_mode_reports_em_at_k(phrase_index, tmp_path):
    dataset = tmp_path / "questions.jsonl"
    rows = [{"id": "q1", "question": QUESTION, "answers": ["Alexander Graham Bell"]},
            {"id": "q2", "question": "When did Bell make the first call?",
             "answers": ["Three days later"]}]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("eval", dataset, "--index", phrase_index, "--mode", "phrase", "--k", "1,5",
                 "--format", "json", "--quiet", "--latency-sample", "0")
    assert result.exit_code == 0, result.output
    (system,) = json.loads(result.stdout)["systems"]
    metrics = system["metrics"]
    assert metrics["em@1"] == metrics["em"]
    assert metrics["em@1"] <= metrics["em@5"] <= 1 and metrics["f1@1"] <= metrics["f1@5"]


def test_the_question_encoder_is_exported_and_phrase_answers_run_without_torch(
    phrase_index, phrase_model
):
    import numpy as np

    from odqa.phrase.index import PhraseEncoder
    from odqa.phrase.query_onnx import usable_export

    from conftest import run_odqa

    section = json.loads((phrase_index / "manifest.json").read_text())["families"]["phrase"]
    record = section["query_onnx"]
    assert record["probe_min_cosine"] >= 0.9999, record
    exported = usable_export(phrase_index / "phrase", section)
    assert exported is not None
    questions = [QUESTION, "When did Bell make the first call?"]
    for ours, torch_side in zip(exported.encode_queries(questions),
                                PhraseEncoder(str(phrase_model), "cpu").encode_queries(questions),
                                strict=True):
        np.testing.assert_allclose(ours, torch_side, rtol=1e-4, atol=1e-4)
    done, heavy = run_odqa("ask", QUESTION, "-i", phrase_index, "--mode", "phrase",
                           "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    assert heavy == [], heavy
    assert json.loads(done.stdout)["answers"]
    # The same spans whichever runtime encodes the questions.
    from odqa.index.store import Index

    retriever = Index.load(phrase_index).retriever("phrase")
    by_onnx = retriever.phrases(questions, 5)
    retriever._encoder = PhraseEncoder(str(phrase_model), "cpu")
    by_torch = retriever.phrases(questions, 5)
    assert [[(s.passage, s.start, s.end) for s in q] for q in by_onnx] == [
        [(s.passage, s.start, s.end) for s in q] for q in by_torch]


def test_passage_spans_are_each_passages_exact_best(phrase_index):
    from odqa import load_index

    retriever = load_index(str(phrase_index)).retriever("phrase", device="cpu")
    qs, qe = retriever.encoder.encode_queries([QUESTION])
    phrase = retriever.index
    start = np.asarray(phrase.start, dtype=np.float32) @ qs[0]
    end = np.asarray(phrase.end, dtype=np.float32) @ qe[0]
    for passage in (0, 2, int(phrase.passage_of[-1])):
        rows = phrase.passage_spans(np.array([passage]), qs[0], qe[0], max_answer_length=4,
                                    top=3)
        assert len(rows) == 3 and np.all(np.diff(rows[:, 2]) <= 0)
        tokens = np.flatnonzero(phrase.passage_of == passage)
        best = max((start[i] + end[j], i, j) for i in tokens for j in tokens
                   if 0 <= phrase.position[j] - phrase.position[i] < 4)
        assert (int(rows[0, 0]), int(rows[0, 1])) == (best[1], best[2])
        assert rows[0, 2] == pytest.approx(best[0], rel=1e-5)


def test_sparse_scoring_adds_the_weighted_bm25_score_of_the_passage(phrase_index):
    from odqa import load_index
    from odqa.phrase.sparse import SparseScoring

    index = load_index(str(phrase_index))
    retriever = index.retriever("phrase", device="cpu")
    bm25 = index.retriever("bm25")
    qs, qe = retriever.encoder.encode_queries([QUESTION])
    phrase = retriever.index
    (spans,) = retriever.phrases([QUESTION], 10, SparseScoring(bm25, weight=2.0, passages=3))
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
    rows = {(int(phrase.tokens[i, 0]), int(phrase.tokens[i, 2]), int(phrase.tokens[j, 3])): (i, j)
            for i in range(len(phrase.tokens)) for j in range(i, min(i + 10, len(phrase.tokens)))}
    for s in spans:
        i, j = rows[(s.passage, s.start, s.end)]
        dense = float(np.asarray(phrase.start[i], np.float32) @ qs[0]
                      + np.asarray(phrase.end[j], np.float32) @ qe[0])
        sparse = float(bm25.passage_scores(QUESTION, np.array([s.passage]))[0])
        assert s.score == pytest.approx(dense + 2.0 * sparse, rel=1e-4, abs=1e-4)
    # BM25 dominating: the best span lies in BM25's best passage, found through --passages
    (dominated,) = retriever.phrases([QUESTION], 3, SparseScoring(bm25, weight=1e4, passages=1))
    (top_ids, _), = bm25.search_ids([QUESTION], 1)
    assert dominated[0].passage == int(top_ids[0])


def test_phrase_sparse_options_from_the_cli(phrase_index, phrase_model, tmp_path):
    def answers(*extra, index=phrase_index):
        result = cli("ask", QUESTION, "--index", index, "--mode", "phrase", "--format",
                     "jsonl", "--device", "cpu", *extra)
        return result.exit_code, result.stdout if result.exit_code == 0 else result.output

    code, dense_only = answers("--phrase-sparse-weight", "0")
    assert code == 0
    code, default = answers()
    assert code == 0 and default == answers("--phrase-sparse-weight", "1.5")[1]
    assert json.loads(default)["answers"] and default != dense_only
    assert answers("--phrase-sparse-passages", "-1")[0] == 2
    open_book = cli("ask", QUESTION, "--index", phrase_index, "--phrase-sparse-weight", "1")
    assert open_book.exit_code == 2  # open-book does not use it
    only_phrase = tmp_path / "only-phrase"
    built = cli("index", SAMPLE_CORPUS, "--out", only_phrase, "--retrievers", "phrase",
                "--phrase-encoder", phrase_model, "--phrase-index", "flat", "--device", "cpu",
                "-q")
    assert built.exit_code == 0, built.output
    code, _ = answers(index=only_phrase)
    assert code == 0  # no bm25: dense only by default
    code, output = answers("--phrase-sparse-weight", "1", index=only_phrase)
    assert code == 1 and "needs a bm25 index" in output and "Traceback" not in output


def test_phrase_shards_and_dask_builds_equal_the_one_process_index(phrase_index, phrase_model,
                                                                    tmp_path):
    common = ["--retrievers", "bm25,phrase", "--phrase-encoder", phrase_model, "--phrase-index",
              "flat", "--phrase-filter-threshold", "-1000", "--device", "cpu", "-q"]
    for number in range(2):
        result = cli("index", SAMPLE_CORPUS, "--out", tmp_path / f"s{number}", *common,
                     "--shard", f"{number}/2")
        assert result.exit_code == 0, result.output
    result = cli("merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "merged", "-q")
    assert result.exit_code == 0, result.output
    result = cli("index", SAMPLE_CORPUS, "--out", tmp_path / "dask", *common,
                 "--executor", "dask", "--scheduler", "local:2", "--resume-chunk", "20")
    assert result.exit_code == 0, result.output
    expected = json.loads((phrase_index / "manifest.json").read_text())["families"]["phrase"]
    for built in ("merged", "dask"):
        folder = tmp_path / built
        section = json.loads((folder / "manifest.json").read_text())["families"]["phrase"]
        for key in ("tokens", "start_candidates", "end_candidates", "corpus_tokens"):
            assert section[key] == expected[key], (built, key)
        for name in ("tokens.npy", "flags.npy"):
            assert np.array_equal(np.load(phrase_index / "phrase" / name),
                                  np.load(folder / "phrase" / name)), (built, name)
        for name in ("start.npy", "end.npy"):
            a, b = (np.load(p / "phrase" / name).astype(np.float32)
                    for p in (phrase_index, folder))
            assert np.abs(a - b).max() < 2e-2, (built, name)
        answers = [cli("ask", QUESTION, "--index", index, "--mode", "phrase", "--top", "3",
                       "--format", "jsonl") for index in (phrase_index, folder)]
        spans = [[(a["text"], a["passage_id"]) for line in r.output.splitlines()
                  for a in json.loads(line)["answers"]] for r in answers]
        assert spans[0] == spans[1] and spans[0], built
