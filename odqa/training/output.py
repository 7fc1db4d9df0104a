"""The folder a training command writes: a Hugging Face model folder plus
``odqa_training.json``, written beside the target and swapped in only when complete."""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from odqa.errors import OdqaError

RECORD = "odqa_training.json"


def check_output(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that would lose data: a file, a folder odqa did not write, or an
    earlier odqa model without ``--force``."""
    if out.is_file():
        raise OdqaError(f"--out {out} is a file: give a folder for the model")
    if out.is_dir() and any(out.iterdir()):
        if not (out / RECORD).is_file():
            raise OdqaError(
                f"--out {out} exists and is not an odqa model folder (no {RECORD}): "
                "choose a new folder"
            )
        if not force:
            raise OdqaError(f"--out {out} already holds a trained model: add --force to replace it")


def write_output(out: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_folder)`` and move the result to ``out`` (replacing an odqa model)."""
    tmp = out.with_name(out.name + ".tmp-train")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = out.with_name(out.name + ".tmp-old")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a trained model depends on."""
    import torch
    import transformers

    from odqa import __version__

    return {"odqa": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """Write ``odqa_training.json`` (adds versions and the time of writing)."""
    full = {**record, "versions": library_versions(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (folder / RECORD).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")


SCRATCH_KINDS = {"bm25": "paragraphs.jsonl", "passages": "key.json"}
"""Scratch folders beside a checkpoint (``<checkpoint>-<kind>``) and the file that marks each
as odqa's: the BM25 index of dense training's hard negatives, the fixed paragraph vectors of
query-side training."""


def scratch_folder(checkpoint_dir: Path, kind: str) -> Path:
    """The scratch folder of ``kind`` (see SCRATCH_KINDS) beside ``checkpoint_dir``."""
    return checkpoint_dir.with_name(f"{checkpoint_dir.name}-{kind}")


def discard_checkpoints(checkpoint_dir: Path) -> None:
    """Remove a finished run's checkpoint folder and the scratch folders beside it that odqa
    made (see SCRATCH_KINDS)."""
    if (checkpoint_dir / "state.json").is_file():
        shutil.rmtree(checkpoint_dir)
    for kind, marker in SCRATCH_KINDS.items():
        folder = scratch_folder(checkpoint_dir, kind)
        if (folder / marker).is_file():
            shutil.rmtree(folder)


def resume_settings(data: list[dict[str, str]], params: Any, **sampling: Any) -> dict[str, Any]:
    """What a checkpoint must have been made with to be resumed (see ``settings`` of
    :func:`odqa.training.loop.train`): the model parameters, the sampling options and the
    training files' sha256 (``data`` from :func:`odqa.training.data.data_files`)."""
    return {**asdict(params), **sampling, "data": [d["sha256"] for d in data]}


def run_fields(result: Any) -> dict[str, Any]:
    """The fields of ``odqa_training.json`` that say how a training run went."""
    return {
        "finished": result.finished,
        "steps": result.state.step,
        "total_steps": result.total_steps,
        "seconds": round(result.state.seconds, 1),
        "device": result.device,
        "precision": result.precision,
        "final_loss": round(result.state.loss, 4),
    }
