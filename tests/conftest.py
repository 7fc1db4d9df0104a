"""Shared fixtures: offline hub, real datasets, one-thread torch, a tiny reader, a sample index."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["ODQA_CACHE"] = tempfile.mkdtemp(prefix="odqa-test-cache-")  # ONNX exports: not ~/.cache

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_CORPUS = REPO / "data" / "sample_corpus.jsonl"
SAMPLE_QUESTIONS = REPO / "data" / "sample_questions.jsonl"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real QA datasets kept beside the repository.

    Tests using it skip (with the reason) when it is absent, unless ``ODQA_REQUIRE_SHARED=1``
    (set by CI), where its absence is a failure.
    """
    if not SHARED_DATA.is_dir():
        reason = f"real datasets not found at {SHARED_DATA}"
        if os.environ.get("ODQA_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason} (required: ODQA_REQUIRE_SHARED=1)")
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def squad_train(shared_data: Path) -> Path:
    """SQuAD v1.1 train (reconstructed, gzip)."""
    return shared_data / "squad-v1.1" / "train-v1.1.reconstructed.json.gz"


@pytest.fixture(scope="session")
def squad_dev(shared_data: Path) -> Path:
    """The official SQuAD v1.1 dev file."""
    return shared_data / "squad-v1.1" / "dev-v1.1.json"


@pytest.fixture(autouse=True)
def cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process code sees a CPU without native bf16, so ``--precision auto`` means fp32 on
    every machine and numerical comparisons do not depend on the CPU the suite runs on. Tests of
    the bf16 choice set the CPU flags themselves."""
    from odqa.runtime import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset())


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread: tiny models gain nothing from intra-op threads, and on a busy
    machine they cost a lot. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_qa_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a random tiny ``BertForQuestionAnswering`` with its tokenizer (read-only)."""
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-qa"), "BertForQuestionAnswering")


@pytest.fixture(scope="session")
def sample_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BM25 index of the sample corpus built with the default options (read-only)."""
    from odqa.index.build import BuildOptions, build_index

    out = tmp_path_factory.mktemp("sample-index") / "sample"
    build_index([SAMPLE_CORPUS], out, BuildOptions())
    return out


HEAVY_PROBE = """
import atexit, sys
heavy = ("torch", "transformers")
atexit.register(lambda: print("HEAVY=" + ",".join(m for m in heavy if m in sys.modules),
                              file=sys.stderr))
from odqa.cli import app
sys.argv = ["odqa", *sys.argv[1:]]
app()
"""


def run_odqa(
    *args: object, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the CLI in a fresh process (``env``: extra variables); also return the heavy
    libraries it had imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", HEAVY_PROBE, *map(str, args)],
        capture_output=True, text=True, env=env, timeout=600, cwd=REPO,
    )  # fmt: skip
    line = [x for x in done.stderr.splitlines() if x.startswith("HEAVY=")][-1]
    return done, [m for m in line.removeprefix("HEAVY=").split(",") if m]
