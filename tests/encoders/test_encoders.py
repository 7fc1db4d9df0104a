"""Encoders: tiny random BERTs saved as a sentence-transformers folder, a plain Hugging Face
folder and a DPR pair, each loaded back through odqa's own loading code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from odqa.encoders import DualEncoder, TextEncoder, inspect_encoder
from odqa.errors import ModelNotAvailableError, OdqaError
from odqa.retrieval.dense_options import DenseOptions
from odqa.types import Passage

from tiny_models import save_dpr_pair, save_sentence_transformers, save_tiny_bert

TEXTS = [
    "the capital of france is paris",
    "a river",
    "the tower was built in 1889 by the king of france and it is the largest tower in paris",
    "who was the composer of the music",
    "water",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    question, context = save_dpr_pair(root)
    return {
        "st": save_sentence_transformers(root / "st"),
        "hf": save_tiny_bert(root / "hf", "BertModel", seed=5),
        "dpr_question": question,
        "dpr_context": context,
    }


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODQA_CACHE", str(tmp_path_factory.getbasetemp() / "odqa-cache"))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def reference_vectors(folder: Path, texts: list[str], pooling: str, normalize: bool) -> np.ndarray:
    """Pooling written out directly on the transformers model, one text at a time."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    rows = []
    with torch.inference_mode():
        for text in texts:
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
            vector = {"cls": hidden[0], "mean": hidden.mean(0), "max": hidden.max(0).values}[
                pooling
            ]
            rows.append(vector / vector.norm() if normalize else vector)
    return torch.stack(rows).numpy()


def test_sentence_transformers_folder_is_read_from_its_config(models: dict[str, Path]) -> None:
    spec = inspect_encoder(str(models["st"]))
    assert (spec.kind, spec.pooling, spec.normalize, spec.max_length) == (
        "sentence-transformers",
        "mean",
        True,
        48,
    )


def test_sentence_transformers_folder_matches_sentence_transformers(
    models: dict[str, Path],
) -> None:
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(models["st"]), device="cpu").encode(TEXTS)
    encoder = TextEncoder(inspect_encoder(str(models["st"])), device="cpu", batch_size=2,
                          precision="fp32")
    np.testing.assert_allclose(encoder.encode(TEXTS), expected, atol=1e-5)


@pytest.mark.parametrize(("pooling", "normalize"), [("cls", False), ("mean", True), ("max", False)])
def test_plain_hf_folder_pools_as_asked(
    models: dict[str, Path], pooling: str, normalize: bool
) -> None:
    spec = inspect_encoder(str(models["hf"]), pooling=pooling, normalize=normalize)
    assert spec.kind == "hf"
    vectors = TextEncoder(spec, device="cpu", batch_size=3, precision="fp32").encode(TEXTS)
    expected = reference_vectors(models["hf"], TEXTS, pooling, normalize)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_plain_hf_defaults_to_mean_without_normalisation(models: dict[str, Path]) -> None:
    spec = inspect_encoder(str(models["hf"]))
    assert (spec.pooling, spec.normalize, spec.max_length) == ("mean", False, 512)


def test_batches_sorted_by_length_keep_input_order(models: dict[str, Path]) -> None:
    spec = inspect_encoder(str(models["hf"]))
    one = TextEncoder(spec, device="cpu", batch_size=1, precision="fp32").encode(TEXTS)
    many = TextEncoder(spec, device="cpu", batch_size=4, precision="fp32").encode(TEXTS)
    np.testing.assert_allclose(many, one, atol=1e-5)
    reversed_input = TextEncoder(spec, device="cpu", batch_size=4, precision="fp32").encode(
        TEXTS[::-1]
    )
    np.testing.assert_allclose(reversed_input[::-1], one, atol=1e-5)


def test_max_length_truncates_and_prefix_is_prepended(models: dict[str, Path]) -> None:
    spec = inspect_encoder(str(models["hf"]), max_length=6)
    encoder = TextEncoder(spec, device="cpu")
    tokens = encoder.tokenize([TEXTS[2]])["input_ids"][0]
    assert len(tokens) == 6
    prefixed = encoder.with_prefix("query: ")
    np.testing.assert_allclose(
        prefixed.encode(["paris"]), encoder.encode(["query: paris"]), atol=1e-6
    )
    assert not np.allclose(prefixed.encode(["paris"]), encoder.encode(["paris"]))


def test_dpr_pair_uses_pooler_output_and_title_sep_text(models: dict[str, Path]) -> None:
    import torch
    from transformers import AutoTokenizer, DPRContextEncoder, DPRQuestionEncoder

    options = DenseOptions(
        encoder=str(models["dpr_context"]), query_encoder=str(models["dpr_question"]), device="cpu",
        precision="fp32",
    )
    dual = DualEncoder.from_options(options)
    assert dual.passage.spec.kind == dual.query.spec.kind == "dpr"
    assert dual.passage.spec.pooling == "cls"
    passages = [Passage("p1", "d1", "paris", TEXTS[2]), Passage("p2", "d2", "music", TEXTS[3])]
    tokenizer = AutoTokenizer.from_pretrained(models["dpr_context"])
    context = DPRContextEncoder.from_pretrained(models["dpr_context"]).eval()
    question = DPRQuestionEncoder.from_pretrained(models["dpr_question"]).eval()
    with torch.inference_mode():
        batch = tokenizer(
            ["paris", "music"], [TEXTS[2], TEXTS[3]], padding=True, return_tensors="pt"
        )
        expected_passages = context(**batch).pooler_output.numpy()
        asked = tokenizer(["who was the composer"], return_tensors="pt")
        expected_query = question(**asked).pooler_output.numpy()
    np.testing.assert_allclose(dual.encode_passages(passages), expected_passages, atol=1e-5)
    np.testing.assert_allclose(
        dual.encode_queries(["who was the composer"]), expected_query, atol=1e-5
    )


def test_dual_encoder_round_trips_through_its_description(models: dict[str, Path]) -> None:
    for options in (
        DenseOptions(encoder=str(models["st"]), query_prefix="query: ", device="cpu"),
        DenseOptions(
            encoder=str(models["dpr_context"]),
            query_encoder=str(models["dpr_question"]),
            device="cpu",
        ),
    ):
        dual = DualEncoder.from_options(options)
        description = json.loads(json.dumps(dual.describe()))
        again = DualEncoder.from_manifest(description, device="cpu")
        assert again.describe() == dual.describe()
        np.testing.assert_allclose(
            again.encode_queries(TEXTS[:2]), dual.encode_queries(TEXTS[:2]), atol=1e-6
        )


def test_dense_options_round_trip_and_validate() -> None:
    options = DenseOptions(encoder="x", pooling="cls", normalize=False, faiss="hnsw", nlist=7)
    assert DenseOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    with pytest.raises(OdqaError, match="choose one of torch, onnx, int8, openvino"):
        DenseOptions(backend="fast")
    with pytest.raises(OdqaError, match="batch_size"):
        DenseOptions(batch_size=0)


def test_onnx_backend_matches_torch_and_int8_stays_close(models: dict[str, Path]) -> None:
    spec = inspect_encoder(str(models["st"]))
    expected = TextEncoder(spec, device="cpu").encode(TEXTS)
    onnx = TextEncoder(spec, backend="onnx", threads=1).encode(TEXTS)
    np.testing.assert_allclose(onnx, expected, atol=1e-4)
    int8 = TextEncoder(spec, backend="int8", threads=1).encode(TEXTS)
    assert int8.shape == expected.shape
    assert cosine(int8, expected).min() > 0.95
    assert not np.allclose(int8, expected, atol=1e-6)


def test_openvino_backend_matches_torch_in_fp32_and_stays_close_in_bf16(
    models: dict[str, Path],
) -> None:
    spec = inspect_encoder(str(models["st"]))
    expected = TextEncoder(spec, device="cpu", precision="fp32").encode(TEXTS)
    fp32 = TextEncoder(spec, backend="openvino", threads=1)  # auto: no native bf16 in tests
    np.testing.assert_allclose(fp32.encode(TEXTS), expected, atol=1e-4)
    assert fp32.runtime_precision == "fp32"
    bf16 = TextEncoder(spec, backend="openvino", threads=1, precision="bf16")
    got = bf16.encode(TEXTS)
    assert cosine(got, expected).min() > 0.99
    # The manifest gets what OpenVINO runs: bf16 where the CPU has it (it then differs from
    # fp32), else fp32 (it then equals fp32).
    if bf16.runtime_precision == "bf16":
        assert not np.allclose(got, expected, atol=1e-6)
    else:
        assert bf16.runtime_precision == "fp32"
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_openvino_precision_and_missing_package(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from odqa.runtime import hardware, openvino

    assert openvino.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert openvino.resolve_precision("auto") == "bf16"
    with pytest.raises(OdqaError, match="fp32 or bf16"):
        openvino.resolve_precision("fp16")
    monkeypatch.setattr(openvino, "available", lambda: False)
    spec = inspect_encoder(str(models["st"]))
    with pytest.raises(OdqaError, match="pip install openvino"):
        TextEncoder(spec, backend="openvino").encode(TEXTS)
    from odqa.encoders.backends import make_forward

    with pytest.raises(OdqaError, match="runs on the CPU"):
        make_forward(spec, "openvino", "cuda", "dense encoder", "--encoder")


def test_missing_model_and_unsupported_settings_raise_clear_errors(
    models: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        inspect_encoder(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotAvailableError, match="CLS pooling"):
        inspect_encoder(str(models["dpr_context"]), pooling="mean")
    dense_module = tmp_path / "with-dense"
    shutil.copytree(models["st"], dense_module)
    modules = json.loads((dense_module / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (dense_module / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelNotAvailableError, match="Dense"):
        inspect_encoder(str(dense_module))


@pytest.mark.slow
def test_packaged_minilm_matches_sentence_transformers_encode() -> None:
    from sentence_transformers import SentenceTransformer

    from odqa.runtime.hub import DEFAULT_DENSE_ENCODER, resolve_model

    queries = ["who wrote the music for the opera?", "largest city in the north"]
    texts = [
        "The opera was composed in 1889 and first performed in Paris the following year, "
        "where it was received with enthusiasm by critics and audiences alike.",
        "Water covers most of the surface of the Earth.",
        "A short one.",
    ]
    dual = DualEncoder.from_options(DenseOptions(device="cpu", include_title=False))
    model = SentenceTransformer(resolve_model(DEFAULT_DENSE_ENCODER), device="cpu")
    passages = [Passage(str(i), str(i), "", t) for i, t in enumerate(texts)]
    assert cosine(dual.encode_passages(passages), model.encode(texts)).min() > 0.999
    assert cosine(dual.encode_queries(queries), model.encode(queries)).min() > 0.999
