"""The training loop, the reader task and `odqa train reader`, on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa.cli import app
from odqa.errors import InputError, OdqaError
from odqa.readers.windows import pad_batch
from odqa.training.data import QAExample, load_qa_examples
from odqa.training.loop import LoopConfig, epoch_batches, learning_rate, steps_per_epoch, train
from odqa.training.output import check_output
from odqa.training.reader import ReaderTrainParams, ReaderTrainTask, answer_tokens

pytestmark = pytest.mark.usefixtures("one_thread")

FACTS = [
    ("paris is the capital of france .", "what is the capital of france ?", "paris"),
    ("rome is the capital of italy .", "what is the capital of italy ?", "rome"),
    ("berlin is the capital of germany .", "what is the capital of germany ?", "berlin"),
    ("tokyo is the capital of japan .", "what is the capital of japan ?", "tokyo"),
    ("london is the largest city of england .", "what is the largest city of england ?",
     "london"),
    ("the tower was built in 1889 .", "when was the tower built ?", "1889"),
    ("the bridge was built in 1066 by the king .", "who built the bridge ?", "the king"),
    ("the museum was founded in 1990 .", "when was the museum founded ?", "1990"),
]


def write_jsonl(path: Path, repeat: int = 2) -> Path:
    rows = []
    for r in range(repeat):
        for i, (context, question, answer) in enumerate(FACTS):
            start = context.index(answer)
            rows.append({"id": f"{r}-{i}", "question": question, "context": context,
                         "answers": [{"text": answer, "answer_start": start}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-base"), "BertModel")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("train") / "train.jsonl")


def make_task(base: Path, train_file: Path, extra_negatives=None, **params) -> ReaderTrainTask:
    from transformers import AutoTokenizer

    examples, _ = load_qa_examples([train_file])
    settings = {"base": str(base), "max_seq_length": 64, "doc_stride": 16, **params}
    return ReaderTrainTask(examples, ReaderTrainParams(**settings),
                           AutoTokenizer.from_pretrained(str(base)),
                           negatives=extra_negatives, progress=False)


def config(**overrides) -> LoopConfig:
    settings = dict(batch_size=4, lr=3e-3, warmup=0.0, precision="fp32", device="cpu", epochs=3,
                    checkpoint_minutes=1000.0, seed=7)
    settings.update(overrides)
    return LoopConfig(**settings)


def test_labels_cover_the_answer_exactly(tiny_base, train_file):
    task = make_task(tiny_base, train_file)
    examples, _ = load_qa_examples([train_file])
    for window, (start, end) in zip(task.windows, task.labels):
        e = examples[window.pair]
        assert start != window.cls
        text = e.context[window.offsets[start, 0] : window.offsets[end, 1]]
        assert text == e.answer_text


def test_answer_outside_a_window_is_labelled_no_answer(tiny_base):
    from transformers import AutoTokenizer

    from odqa.readers.windows import encode_pairs

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    context = " ".join(["the city"] * 40) + " paris"
    windows = encode_pairs(tokenizer, ["where ?"], [context], max_seq_length=32, doc_stride=8)
    assert len(windows) > 2
    start_char = context.index("paris")
    labels = [answer_tokens(w, start_char, start_char + 5) for w in windows]
    assert labels[0] == (windows[0].cls, windows[0].cls)
    last, (s, e) = windows[-1], labels[-1]
    assert context[last.offsets[s, 0] : last.offsets[e, 1]] == "paris"


def test_epoch_batches_cover_every_item_once_and_are_reproducible():
    lengths = np.random.default_rng(0).integers(10, 300, size=1001)
    a = epoch_batches(lengths, 8, seed=3, epoch=0)
    assert sorted(np.concatenate(a).tolist()) == list(range(1001))
    assert all(len(b) <= 8 for b in a)
    assert [b.tolist() for b in a] == [b.tolist() for b in epoch_batches(lengths, 8, 3, 0)]
    assert [b.tolist() for b in a] != [b.tolist() for b in epoch_batches(lengths, 8, 3, 1)]
    assert steps_per_epoch(1001, LoopConfig(batch_size=8, grad_accum=3)) == -(-len(a) // 3)


def test_learning_rate_warms_up_then_decays_to_zero():
    cfg = LoopConfig(lr=1.0, warmup=0.1)
    rates = [learning_rate(s, 100, cfg) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert np.all(np.diff(rates[9:]) <= 0)
    assert rates[-1] == pytest.approx(1 / 90)


def held_out_loss(model, task) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(task.loss(model, np.arange(len(task.windows)), "cpu", False))


def test_training_lowers_the_loss(tiny_base, train_file, tmp_path):
    task = make_task(tiny_base, train_file)
    import torch

    torch.manual_seed(7)
    before = held_out_loss(task.build_model(), task)
    model, result = train(task, config(epochs=12), tmp_path / "ckpt", progress=False)
    assert result.finished and result.state.step == result.total_steps
    assert held_out_loss(model, task) < 0.6 * before


def test_resume_gives_identical_weights(tiny_base, train_file, tmp_path):
    import torch

    task = make_task(tiny_base, train_file)
    straight, _ = train(task, config(grad_accum=2), tmp_path / "a", progress=False)
    _, paused = train(task, config(grad_accum=2), tmp_path / "b", progress=False,
                      stop_after_steps=2)
    assert not paused.finished and paused.state.step == 2
    resumed, result = train(task, config(grad_accum=2), tmp_path / "b", progress=False,
                            resume=True)
    assert result.finished
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_changed_settings_and_fresh_run_refuses_old_checkpoint(
    tiny_base, train_file, tmp_path
):
    task = make_task(tiny_base, train_file)
    train(task, config(), tmp_path / "c", progress=False, stop_after_steps=1)
    with pytest.raises(OdqaError, match=r"--lr 0\.003"):
        train(task, config(lr=1e-3), tmp_path / "c", progress=False, resume=True)
    with pytest.raises(OdqaError, match="--resume"):
        train(task, config(), tmp_path / "c", progress=False)


def test_resume_refuses_other_model_settings_or_training_files(tiny_base, train_file, tmp_path):
    task = make_task(tiny_base, train_file)
    kept = {"temperature": 0.05, "max_examples": None, "data": ["aa"]}
    train(task, config(), tmp_path / "s", progress=False, stop_after_steps=1, settings=kept)
    for changed, message in (({"temperature": 0.1}, r"--temperature 0\.05"),
                             ({"data": ["bb"]}, "other training files"),
                             ({"max_examples": 5}, "--max-examples None")):
        with pytest.raises(OdqaError, match=message):
            train(task, config(), tmp_path / "s", progress=False, resume=True,
                  settings=kept | changed)
    _, result = train(task, config(), tmp_path / "s", progress=False, resume=True,
                      settings=dict(kept))
    assert result.finished


def test_train_dense_resume_checks_its_parameters(tiny_base, tmp_path):
    from odqa.training.dense import DenseTrainParams
    from odqa.training.run_dense import train_dense

    train_json = squad_json(tmp_path / "train.json")
    out, loop = tmp_path / "encoder", config(batch_size=4, precision="fp32")
    params = DenseTrainParams(base=str(tiny_base), temperature=0.05)
    record = train_dense([train_json], out, params, loop, stop_after_steps=1, progress=False)
    assert not record["finished"]
    hotter = DenseTrainParams(base=str(tiny_base), temperature=0.2)
    with pytest.raises(OdqaError, match=r"--temperature 0\.05: use those"):
        train_dense([train_json], out, hotter, loop, resume=True, progress=False)
    assert train_dense([train_json], out, params, loop, resume=True, progress=False)["finished"]


def test_frozen_embeddings_do_not_change(tiny_base, train_file, tmp_path):
    import torch

    task = make_task(tiny_base, train_file)
    torch.manual_seed(7)
    initial = task.build_model().base_model.embeddings.word_embeddings.weight.clone()
    model, _ = train(task, config(epochs=1), tmp_path / "d", progress=False)
    assert torch.equal(model.base_model.embeddings.word_embeddings.weight, initial)
    assert not torch.equal(model.qa_outputs.weight, task.build_model().qa_outputs.weight)


def test_data_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "context": "abc",
                               "answers": [{"text": "zz", "answer_start": 0}]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: .*'zz' is not at character 0"):
        load_qa_examples([bad])


def test_hugging_face_answer_layout_and_offset_source_filter(tmp_path):
    path = tmp_path / "hf.jsonl"
    rows = [{"question": "q", "context": "abc def", "offset_source": "guess",
             "answers": {"text": ["def"], "answer_start": [4]}},
            {"question": "q2", "context": "abc def", "answers": {"text": ["abc"],
                                                                  "answer_start": [0]}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples, dropped = load_qa_examples([path], drop_offset_sources=["guess"])
    assert dropped == 1
    assert examples == [QAExample("2", "q2", "abc def", 0, "abc", answers=("abc",))]


def test_output_folder_guard(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    with pytest.raises(OdqaError, match="not an odqa model folder"):
        check_output(tmp_path / "notes", force=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(OdqaError, match="is a file"):
        check_output(tmp_path / "f", force=True)


def run_cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("save", ["full", "delta"])
def test_cli_trains_a_reader_that_odqa_loads(tiny_base, train_file, tmp_path, save):
    from odqa.readers.extractive import ExtractiveReader, ReaderParams

    out = tmp_path / f"reader-{save}"
    result = run_cli(
        "train", "reader", train_file, "--out", out, "--base", tiny_base, "--epochs", "4",
        "--batch-size", "4", "--lr", "3e-3", "--max-seq-length", "64", "--precision", "fp32",
        "--device", "cpu", "--save", save, "--eval", write_jsonl(tmp_path / "dev.jsonl", 1),
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "odqa_training.json").read_text())
    assert record["finished"] and record["steps"] == record["total_steps"] == 16
    assert len(record["data"][0]["sha256"]) == 64
    assert record["eval"]["questions"] == len(FACTS)
    assert (out / ("delta.safetensors" if save == "delta" else "model.safetensors")).is_file()
    reader = ExtractiveReader(str(out), ReaderParams(max_seq_length=64, device="cpu"))
    (spans,), = reader.read([FACTS[0][1]], [[FACTS[0][0]]])
    assert len(spans.starts) > 0
    again = run_cli("train", "reader", train_file, "--out", out, "--base", tiny_base)
    assert again.exit_code == 1 and "--force" in again.output
    assert not (tmp_path / f"reader-{save}.train-state").exists()  # removed once written
    report = run_cli("eval", tmp_path / "dev.jsonl", "--mode", "reading", "--reader", out,
                     "--format", "json", "--quiet", "--device", "cpu")
    assert report.exit_code == 0, report.output
    (system,) = json.loads(report.stdout)["systems"]
    assert 100 * system["metrics"]["f1"] == pytest.approx(record["eval"]["f1"], abs=0.01)
    assert 100 * system["metrics"]["em"] == pytest.approx(record["eval"]["em"], abs=0.01)


def test_delta_folder_equals_the_full_model(tiny_base, train_file, tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering

    from odqa.delta import load_delta, save_delta

    task = make_task(tiny_base, train_file)
    model, _ = train(task, config(epochs=1), tmp_path / "e", progress=False)
    model.eval()
    saved = save_delta(model, str(tiny_base), tmp_path / "delta", dtype="float32")
    emb = model.base_model.embeddings
    frozen = sum(p.numel() for p in emb.parameters())
    assert saved == sum(p.numel() for p in model.parameters()) - frozen
    loaded = load_delta(AutoModelForQuestionAnswering, tmp_path / "delta").eval()
    state, back = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(state[k], back[k]) for k in state)


def squad_json(path: Path) -> Path:
    paragraphs = {}
    for i, (context, question, answer) in enumerate(FACTS):
        title = f"t{i % 4}"
        paragraphs.setdefault((title, context), []).append(
            {"id": str(i), "question": question,
             "answers": [{"text": answer, "answer_start": context.index(answer)}]})
    articles: dict[str, list] = {}
    for (title, context), qas in paragraphs.items():
        articles.setdefault(title, []).append({"context": context, "qas": qas})
    data = {"data": [{"title": t, "paragraphs": ps} for t, ps in articles.items()]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_dense_hard_negatives_never_hold_the_answer(tmp_path):
    from odqa.evaluate import has_answer
    from odqa.training.negatives import bm25_negatives

    examples, _ = load_qa_examples([squad_json(tmp_path / "train.json")])
    paragraphs = list(dict.fromkeys((e.title, e.context) for e in examples))
    positive = np.array([paragraphs.index((e.title, e.context)) for e in examples])
    found = bm25_negatives(examples, paragraphs, positive, 5, tmp_path / "scratch")[:, 0]
    assert (found >= 0).sum() >= len(examples) // 2
    for e, n, p in zip(examples, found, positive):
        if n >= 0:
            assert n != p and not has_answer(e.answers, paragraphs[n][1])


def test_cli_trains_a_dense_encoder_that_odqa_indexes_with(tiny_base, tmp_path):
    from odqa import load_index
    from odqa.encoders.spec import inspect_encoder

    train_json = squad_json(tmp_path / "train.json")
    out = tmp_path / "encoder"
    result = run_cli("train", "dense", train_json, "--out", out, "--base", tiny_base,
                     "--epochs", "3", "--batch-size", "4", "--lr", "1e-3",
                     "--precision", "fp32", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "odqa_training.json").read_text())
    assert record["kind"] == "dense" and record["finished"] and record["hard_negatives"] > 0
    before, after = inspect_encoder(str(tiny_base)), inspect_encoder(str(out))
    assert (after.kind, after.pooling, after.max_length) == (
        "sentence-transformers", before.pooling, before.max_length)
    index_out = tmp_path / "index"
    built = run_cli("index", train_json, "--out", index_out, "--retrievers", "dense",
                    "--encoder", out, "--passage-words", "0", "-q")
    assert built.exit_code == 0, built.output
    hits = load_index(str(index_out)).search([FACTS[0][1]], k=3, retriever="dense")[0]
    assert len(hits) == 3


def test_reader_groups_read_gold_and_negative_windows_with_shared_normalisation(
    tiny_base, train_file
):
    import torch

    plain = make_task(tiny_base, train_file)
    negatives = [[FACTS[(i + 1) % len(FACTS)][0], FACTS[(i + 2) % len(FACTS)][0]]
                 for i in range(len(plain.windows))]
    task = make_task(tiny_base, train_file, negatives=2, extra_negatives=negatives)
    assert task.groups is not None and len(task.groups) == plain.n_examples
    assert all(len(g) == 3 for g in task.groups) and task.dropped_groups == 0
    cls = np.array([w.cls for w in task.windows])
    for group, target in zip(task.groups, task.group_targets):
        assert target == group[0]  # the gold paragraph is read first and holds the answer
        assert (task.labels[group[1:], 0] == cls[group[1:]]).all()  # negatives: no label
    lengths = task.item_lengths()
    assert (lengths == [3 * max(len(task.windows[r]) for r in g) for g in task.groups]).all()
    # Shared normalisation over one window is plain cross-entropy over its passage tokens.
    model = task.build_model().eval()
    solo = make_task(tiny_base, train_file, negatives=1, extra_negatives=[[]] * 16)
    with torch.no_grad():
        shared = float(solo.loss(model, np.array([0]), "cpu", False))
        batch = {k: torch.from_numpy(v)
                 for k, v in pad_batch([solo.windows[0]], solo.pad_id).items()}
        context = batch.pop("context")
        out = model(**batch)
        start, end = solo.labels[0]
        expect = 0.0
        for logits, label in ((out.start_logits, start), (out.end_logits, end)):
            row = logits[0][context[0]]
            expect += float(torch.logsumexp(row, 0) - logits[0, label]) / 2
    assert shared == pytest.approx(expect, rel=1e-5)
    torch.manual_seed(7)
    before = held_out_group_loss(task.build_model(), task)
    trained, _ = train(task, config(epochs=12), Path(str(tiny_base) + "-g"), progress=False)
    assert held_out_group_loss(trained, task) < 0.6 * before


def held_out_group_loss(model, task) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(task.loss(model, np.arange(len(task.groups)), "cpu", False))


def test_sample_start_gives_disjoint_samples():
    from odqa.training.run_reader import sample_examples

    examples = [QAExample(str(i), "q", "c", 0, "c") for i in range(100)]
    first = {e.id for e in sample_examples(examples, 30, 5)}
    second = {e.id for e in sample_examples(examples, 30, 5, start=30)}
    assert len(first) == len(second) == 30 and not first & second
    assert len(sample_examples(examples, None, 5, start=90)) == 10


def test_cli_continues_a_reader_with_bm25_negatives(tiny_base, tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering

    from odqa.delta import load_delta

    train_json = squad_json(tmp_path / "train.json")
    common = ["--base", tiny_base, "--batch-size", "4", "--max-seq-length", "64",
              "--precision", "fp32", "--device", "cpu", "--save", "delta"]
    first = tmp_path / "first"
    assert run_cli("train", "reader", train_json, "--out", first, "--epochs", "2",
                   *common).exit_code == 0
    second = tmp_path / "second"
    result = run_cli("train", "reader", train_json, "--out", second, "--init", first,
                     "--negatives", "2", "--bm25-depth", "5", "--epochs", "1", "--lr", "1e-9",
                     *common)
    assert result.exit_code == 0, result.output
    record = json.loads((second / "odqa_training.json").read_text())
    assert record["params"]["init"] == str(first) and record["params"]["negatives"] == 2
    assert record["negative_passages"] > 0 and record["questions_without_answer_window"] == 0
    # A tiny learning rate barely moves the weights: training started from --init, not --base.
    a = load_delta(AutoModelForQuestionAnswering, first).state_dict()
    b = load_delta(AutoModelForQuestionAnswering, second).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)
    bad = run_cli("train", "reader", train_json, "--out", tmp_path / "x", "--negatives", "3",
                  "--bm25-depth", "2", *common)
    assert bad.exit_code == 1 and "--bm25-depth" in bad.output
