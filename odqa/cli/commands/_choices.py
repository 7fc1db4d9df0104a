"""The fixed choices of CLI options, one Enum each, shared by the commands."""

from __future__ import annotations

from enum import Enum


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"
    int8 = "int8"
    openvino = "openvino"


class ReaderBackend(str, Enum):
    """Extractive reader runtimes; ``auto`` is onnx on the CPU (fp32), torch elsewhere."""

    auto = "auto"
    torch = "torch"
    onnx = "onnx"
    int8 = "int8"
    openvino = "openvino"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class LongPassages(str, Enum):
    windows = "windows"
    truncate = "truncate"


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"
    max = "max"


class BM25Variant(str, Enum):
    lucene = "lucene"
    okapi = "okapi"
    bm25l = "bm25l"
    bm25plus = "bm25plus"
    robertson = "robertson"


class Stopwords(str, Enum):
    en = "en"
    none = "none"


class Stemmer(str, Enum):
    english = "english"
    none = "none"


class FaissKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


class ExecutorName(str, Enum):
    process = "process"
    pool = "pool"
    dask = "dask"


class Fusion(str, Enum):
    rrf = "rrf"
    linear = "linear"


class AskMode(str, Enum):
    open_book = "open-book"
    phrase = "phrase"
    closed_book = "closed-book"


class EvalMode(str, Enum):
    retrieval = "retrieval"
    reading = "reading"
    phrase = "phrase"
    open_book = "open-book"
    closed_book = "closed-book"


class ScoreMode(str, Enum):
    reader = "reader"
    combined = "combined"


class ReaderKind(str, Enum):
    extractive = "extractive"
    generative = "generative"


class HitFormat(str, Enum):
    """Output of `odqa search`."""

    table = "table"
    jsonl = "jsonl"
    trec = "trec"


class AnswerFormat(str, Enum):
    """Output of `odqa ask`."""

    table = "table"
    jsonl = "jsonl"


class ReportFormat(str, Enum):
    """Output of `odqa eval`."""

    table = "table"
    json = "json"


class PhraseIndexKind(str, Enum):
    flat = "flat"
    sq8 = "sq8"
    ivfpq = "ivfpq"


class TrainPrecision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class SaveMode(str, Enum):
    full = "full"
    delta = "delta"
