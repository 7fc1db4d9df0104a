"""``odqa train reader``: fine-tune an encoder for extractive QA, save it, optionally score it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.training.data import QAExample, data_files, file_sha256, load_qa_examples
from odqa.training.loop import LoopConfig, train
from odqa.training.negatives import bm25_negatives, paragraph_table
from odqa.training.output import (
    RECORD,
    check_output,
    discard_checkpoints,
    resume_settings,
    run_fields,
    scratch_folder,
    write_output,
    write_record,
)
from odqa.training.reader import ReaderTrainParams, ReaderTrainTask

SAVE_MODES = ("full", "delta")


def sample_examples(
    examples: list[QAExample], limit: int | None, seed: int, start: int = 0
) -> list[QAExample]:
    """A seeded random ``limit`` of the examples (all when None), kept in file order.

    ``start`` skips the first ``start`` of the seeded order, so runs with the same seed and
    increasing starts train on disjoint samples (a continued model sees new questions).
    """
    if start == 0 and (limit is None or limit >= len(examples)):
        return examples
    order = np.random.default_rng(seed).permutation(len(examples))
    end = None if limit is None else start + limit
    return [examples[i] for i in np.sort(order[start:end])]


def check_save_mode(save: str, freeze_embeddings: bool) -> None:
    """Refuse an unknown ``--save``, and a delta that would have to store the embeddings."""
    if save not in SAVE_MODES:
        raise OdqaError(f"unknown --save '{save}': choose one of {', '.join(SAVE_MODES)}")
    if save == "delta" and not freeze_embeddings:
        raise OdqaError("--save delta needs --freeze-embeddings (the delta leaves them out)")


def load_base_tokenizer(base: str) -> Any:
    """The fast tokenizer of the model training starts from (one-line error when missing)."""
    from transformers import AutoTokenizer

    from odqa.runtime.hub import load_pretrained, quiet_transformers

    with quiet_transformers():
        return load_pretrained(AutoTokenizer.from_pretrained, base, "base", "--base")


def train_reader(
    train_files: list[Path],
    out: Path,
    params: ReaderTrainParams,
    config: LoopConfig,
    *,
    max_examples: int | None = None,
    sample_start: int = 0,
    drop_offset_sources: tuple[str, ...] = (),
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    force: bool = False,
    time_limit: float | None = None,
    stop_after_steps: int | None = None,
    eval_file: Path | None = None,
    eval_limit: int | None = None,
    save: str = "full",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a reader into ``out``; return the training record (also in ``odqa_training.json``).

    When the run stops early (time limit), nothing is written to ``out`` and the record says
    ``"finished": false``; run again with ``resume=True``.
    """
    check_save_mode(save, params.freeze_embeddings)
    check_output(out, force)
    checkpoint_dir = checkpoint_dir or out.with_name(out.name + ".train-state")
    eval_examples = None
    if eval_file is not None:
        eval_examples, _ = load_qa_examples([eval_file])
        eval_examples = eval_examples[:eval_limit] if eval_limit else eval_examples
    examples, dropped = load_qa_examples(train_files, drop_offset_sources=drop_offset_sources)
    paragraphs, paragraph_ids = paragraph_table(examples)
    examples = sample_examples(examples, max_examples, config.seed, sample_start)
    if not examples:
        raise OdqaError(f"--sample-start {sample_start} leaves no training questions")
    negatives = None
    if params.negatives:
        positive = np.array([paragraph_ids[(e.title, e.context)] for e in examples])
        found = bm25_negatives(examples, paragraphs, positive, params.bm25_depth,
                               scratch_folder(checkpoint_dir, "bm25"),
                               count=params.negatives)
        negatives = [[paragraphs[j][1] for j in row if j >= 0] for row in found]
    tokenizer = load_base_tokenizer(params.base)
    task = ReaderTrainTask(examples, params, tokenizer, negatives=negatives, progress=progress)
    data = data_files(train_files)
    settings = resume_settings(data, params, max_examples=max_examples, sample_start=sample_start,
                               drop_offset_sources=list(drop_offset_sources))
    model, result = train(
        task, config, checkpoint_dir, resume=resume, time_limit=time_limit,
        stop_after_steps=stop_after_steps, progress=progress, description="train reader",
        settings=settings,
    )
    record: dict[str, Any] = {
        "kind": "reader",
        "data": data,
        "examples": len(examples),
        "dropped_offset_sources": {"sources": list(drop_offset_sources), "questions": dropped},
        "windows": len(task.windows),
        "answerable_windows": round(task.answerable_share(), 4),
        "negative_passages": None if negatives is None else sum(map(len, negatives)),
        "questions_without_answer_window": None if negatives is None else task.dropped_groups,
        "params": asdict(params),
        "loop": asdict(config),
        "max_examples": max_examples,
        "sample_start": sample_start,
        "save": save,
        **run_fields(result),
    }
    if not result.finished:
        return record

    def write(folder: Path) -> None:
        model.eval()
        if save == "delta":
            from odqa.delta import save_delta

            save_delta(model.cpu(), params.base, folder)  # its tokenizer is the base's
        else:
            model.cpu().save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
        write_record(folder, record)

    write_output(out, write)
    discard_checkpoints(checkpoint_dir)
    if eval_examples is not None and eval_file is not None:
        record["eval"] = evaluate_model(out, eval_file, eval_examples, params, progress)
        write_record(out, record)
    return json.loads((out / RECORD).read_text(encoding="utf-8"))


def evaluate_model(
    model_dir: Path, eval_file: Path, examples: list[QAExample], params: ReaderTrainParams,
    progress: bool,
) -> dict[str, Any]:
    """EM/F1 of the saved reader on the gold paragraphs of ``examples``."""
    from odqa.evaluation.reading import evaluate_reading
    from odqa.readers.extractive import ExtractiveReader, ReaderParams

    reader = ExtractiveReader(
        str(model_dir),
        ReaderParams(max_seq_length=params.max_seq_length, doc_stride=params.doc_stride),
    )
    result = evaluate_reading(reader, examples, progress=progress)
    return {"file": eval_file.name, "sha256": file_sha256(eval_file), **result.to_dict()}
