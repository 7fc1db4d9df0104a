"""The extractive reader on ONNX Runtime + tokenizers: exported on first use into the cache,
then loaded without torch; same answers as the torch reader, delta folders included."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from odqa import load_index
from odqa.answering.open_book import answer_open_book
from odqa.errors import OdqaError
from odqa.readers import onnx_backend
from odqa.readers.extractive import DEFAULT_READER, ExtractiveReader, ReaderParams
from odqa.runtime.fast_tokenizer import FastTokenizer
from odqa.runtime.hub import packaged_model_path
from odqa.types import Query

from conftest import run_odqa as run_cli
from tiny_models import save_tiny_bert

QUESTIONS = [
    Query("1", "Who received a patent for the telephone?"),
    Query("2", "When did Cassini reach Saturn?"),
    Query("3", "What is the highest mountain in Africa?"),
]
FAST = dict(max_seq_length=64, doc_stride=24, passages=4, device="cpu")
def run_odqa(*args: object, cache: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the CLI in a fresh process with ONNX cache ``cache`` (see conftest.run_odqa)."""
    return run_cli(*args, env={"ODQA_CACHE": str(cache)})


def answers(index, reader: str, **options) -> list[list[tuple]]:
    found = answer_open_book(index, QUESTIONS, reader=reader, top=5, **FAST, **options)
    return [[(a.text, a.passage_id, a.start, a.end) for a in q.answers] for q in found]


@pytest.fixture(scope="module")
def delta_reader(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny QA base model and a delta folder over it with a retrained answer head."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from odqa.delta import save_delta

    root = tmp_path_factory.mktemp("delta-reader")
    base = save_tiny_bert(root / "base", "BertForQuestionAnswering", seed=7)
    model = AutoModelForQuestionAnswering.from_pretrained(base)
    torch.manual_seed(8)
    with torch.no_grad():
        model.qa_outputs.weight.normal_(std=0.5)
    save_delta(model, str(base), root / "delta", dtype="float32")
    AutoTokenizer.from_pretrained(base).save_pretrained(root / "delta")
    return base, root / "delta"


def test_onnx_reader_gives_the_torch_answers(sample_index_dir: Path, tiny_qa_model: Path) -> None:
    index = load_index(sample_index_dir)
    expected = answers(index, str(tiny_qa_model), backend="torch", precision="fp32")
    assert answers(index, str(tiny_qa_model), backend="onnx") == expected
    assert answers(index, str(tiny_qa_model)) == expected  # auto: onnx on the CPU
    reader = ExtractiveReader(str(tiny_qa_model), ReaderParams(device="cpu"))
    reader.warm_up()
    assert isinstance(reader._loaded.tokenizer, FastTokenizer)
    assert onnx_backend.is_exported(str(tiny_qa_model))


def test_openvino_reader_gives_the_torch_answers(
    sample_index_dir: Path, tiny_qa_model: Path
) -> None:
    index = load_index(sample_index_dir)
    expected = answers(index, str(tiny_qa_model), backend="torch", precision="fp32")
    assert answers(index, str(tiny_qa_model), backend="openvino", precision="fp32") == expected
    bf16 = answers(index, str(tiny_qa_model), backend="openvino", precision="bf16")
    assert sum(a[0] == b[0] for a, b in zip(bf16, expected)) >= len(QUESTIONS) - 1
    reader = ExtractiveReader(str(tiny_qa_model), ReaderParams(device="cpu", backend="openvino"))
    reader.warm_up()
    assert isinstance(reader._loaded.tokenizer, FastTokenizer)
    with pytest.raises(OdqaError, match="fp32 or bf16"):
        ExtractiveReader(str(tiny_qa_model),
                         ReaderParams(device="cpu", backend="openvino", precision="fp16")).warm_up()


def test_delta_folder_is_exported_with_its_base(
    sample_index_dir: Path, delta_reader: tuple[Path, Path]
) -> None:
    base, delta = delta_reader
    assert onnx_backend.model_folders(str(delta)) == [str(delta), str(base)]
    index = load_index(sample_index_dir)
    expected = answers(index, str(delta), backend="torch", precision="fp32")
    assert expected != answers(index, str(base), backend="torch", precision="fp32")  # delta matters
    assert answers(index, str(delta), backend="onnx") == expected
    before = onnx_backend.cache_folder(str(delta))
    config = base / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert onnx_backend.cache_folder(str(delta)) != before  # a changed base is a new export


def test_int8_reader_quantises_the_cached_export(tiny_qa_model: Path) -> None:
    passages = [["alexander graham bell received a patent for the telephone in 1876 ."]]
    question = ["who received a patent for the telephone ?"]
    torch_reader = ExtractiveReader(
        str(tiny_qa_model), ReaderParams(device="cpu", backend="torch", precision="fp32")
    )
    int8_reader = ExtractiveReader(str(tiny_qa_model), ReaderParams(device="cpu", backend="int8"))
    ((expected,),), ((got,),) = torch_reader.read(question, passages), int8_reader.read(
        question, passages
    )
    assert len(got.scores) == len(expected.scores)
    np.testing.assert_allclose(np.sort(got.scores), np.sort(expected.scores), atol=0.05)
    assert (onnx_backend.cache_folder(str(tiny_qa_model)) / "model.int8.onnx").is_file()


def test_auto_falls_back_to_torch_when_the_export_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = str(save_tiny_bert(tmp_path / "qa", "BertForQuestionAnswering", seed=4))

    def broken(*args: object) -> None:
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(onnx_backend, "export_reader", broken)
    auto = ExtractiveReader(folder, ReaderParams(device="cpu"))
    auto.warm_up()
    assert not isinstance(auto._loaded.tokenizer, FastTokenizer)
    with pytest.raises(RuntimeError, match="exporter failed"):
        ExtractiveReader(folder, ReaderParams(device="cpu", backend="onnx")).warm_up()


def test_cli_ask_reads_without_torch_once_the_export_is_cached(
    sample_index_dir: Path, tiny_qa_model: Path, tmp_path: Path
) -> None:
    args = ["ask", QUESTIONS[0].text, "-i", sample_index_dir, "--reader", tiny_qa_model,
            "--format", "jsonl", "--max-seq-length", "64", "--passages", "4"]  # fmt: skip
    first, heavy_first = run_odqa(*args, cache=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "torch" in heavy_first  # the first use exports the model
    assert list((tmp_path / "onnx" / "reader").glob("*/reader.json"))
    second, heavy = run_odqa(*args, cache=tmp_path)
    assert second.returncode == 0, second.stderr
    assert heavy == [], f"odqa ask imported {heavy}"
    assert json.loads(second.stdout) == json.loads(first.stdout)


@pytest.mark.slow
@pytest.mark.skipif(
    packaged_model_path(DEFAULT_READER) is None,
    reason=f"the bundled reader {DEFAULT_READER} is not in odqa/models/ in this checkout",
)
def test_cli_ask_with_the_default_reader_runs_without_torch(
    sample_index_dir: Path, tmp_path: Path
) -> None:
    args = ["ask", QUESTIONS[0].text, "-i", sample_index_dir, "--format", "jsonl"]
    first, _ = run_odqa(*args, cache=tmp_path)
    assert first.returncode == 0, first.stderr
    second, heavy = run_odqa(*args, cache=tmp_path)
    assert second.returncode == 0 and heavy == [], (heavy, second.stderr)
    record = json.loads(second.stdout)
    assert record["mode"] == "extractive"
    assert record == json.loads(first.stdout)


def test_every_reader_backend_name_has_a_runtime() -> None:
    from odqa.readers.extractive import BACKENDS, READER_BACKENDS

    assert set(BACKENDS) == {"auto", *READER_BACKENDS}
    assert READER_BACKENDS["int8"].precision("bf16", "cpu") == "fp32"  # ONNX runs fp32 only
