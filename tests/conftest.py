"""Shared fixtures: offline hub, paths to the shared real datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_CORPUS = REPO / "data" / "sample_corpus.jsonl"
SAMPLE_QUESTIONS = REPO / "data" / "sample_questions.jsonl"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real QA datasets kept beside the repository."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def squad_dev(shared_data: Path) -> Path:
    """The official SQuAD v1.1 dev file."""
    return shared_data / "squad-v1.1" / "dev-v1.1.json"
