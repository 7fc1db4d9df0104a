"""``odqa train phrase``: train a phrase encoder (DensePhrases-style) and save it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from odqa.training.data import data_files, load_qa_examples
from odqa.training.loop import LoopConfig, train
from odqa.training.output import (
    RECORD,
    check_output,
    discard_checkpoints,
    resume_settings,
    run_fields,
    write_output,
    write_record,
)
from odqa.training.phrase import PhraseTrainParams, PhraseTrainTask
from odqa.training.run_reader import check_save_mode, load_base_tokenizer, sample_examples


def train_phrase(
    train_files: list[Path],
    out: Path,
    params: PhraseTrainParams,
    config: LoopConfig,
    *,
    max_examples: int | None = None,
    drop_offset_sources: tuple[str, ...] = (),
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    force: bool = False,
    time_limit: float | None = None,
    stop_after_steps: int | None = None,
    save: str = "full",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a phrase model into ``out``; return the training record (``odqa_training.json``).

    When the run stops early (time limit), nothing is written to ``out`` and the record says
    ``"finished": false``; run again with ``resume=True``.
    """
    from odqa.phrase.model import save_phrase_model

    check_save_mode(save, params.freeze_embeddings)
    check_output(out, force)
    checkpoint_dir = checkpoint_dir or out.with_name(out.name + ".train-state")
    examples, dropped = load_qa_examples(train_files, drop_offset_sources=drop_offset_sources)
    examples = sample_examples(examples, max_examples, config.seed)
    tokenizer = load_base_tokenizer(params.base)
    task = PhraseTrainTask(examples, params, tokenizer, progress=progress)
    data = data_files(train_files)
    settings = resume_settings(data, params, max_examples=max_examples,
                               drop_offset_sources=list(drop_offset_sources))
    model, result = train(
        task, config, checkpoint_dir, resume=resume, time_limit=time_limit,
        stop_after_steps=stop_after_steps, progress=progress, description="train phrase",
        settings=settings,
    )
    record: dict[str, Any] = {
        "kind": "phrase",
        "data": data,
        "examples": len(task.windows),
        "without_answer_window": task.dropped,
        "dropped_offset_sources": {"sources": list(drop_offset_sources), "questions": dropped},
        "params": asdict(params),
        "loop": asdict(config),
        "max_examples": max_examples,
        "save": save,
        **run_fields(result),
    }
    if not result.finished:
        return record

    def write(folder: Path) -> None:
        model.eval()
        save_phrase_model(model.cpu(), tokenizer, folder,
                          delta_over=params.base if save == "delta" else None)
        write_record(folder, record)

    write_output(out, write)
    discard_checkpoints(checkpoint_dir)
    return json.loads((out / RECORD).read_text(encoding="utf-8"))
