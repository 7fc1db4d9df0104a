"""``odqa train dense``: contrastive fine-tuning of a dense encoder, saved as a
sentence-transformers folder that ``odqa index --encoder DIR`` loads."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.training.data import data_files, load_qa_examples
from odqa.training.dense import (
    DenseTrainParams,
    DenseTrainTask,
    save_sentence_transformers,
)
from odqa.training.dense_query import QuerySideTrainTask, check_width, paragraph_vectors
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
from odqa.training.run_reader import sample_examples


def train_dense(
    train_files: list[Path],
    out: Path,
    params: DenseTrainParams,
    config: LoopConfig,
    *,
    max_examples: int | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    force: bool = False,
    time_limit: float | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a dense encoder into ``out``; return the training record (``odqa_training.json``).

    With ``params.passage_encoder`` only a question encoder is trained, against that fixed
    passage encoder (query-side fine-tuning); ``out`` is then the ``--query-encoder`` of an
    ``odqa index --encoder PASSAGE_ENCODER`` build.

    When the run stops early (time limit), nothing is written to ``out`` and the record says
    ``"finished": false``; run again with ``resume=True``.
    """
    from transformers import AutoTokenizer

    from odqa.encoders.spec import inspect_encoder
    from odqa.runtime.hub import load_pretrained, quiet_transformers

    check_output(out, force)
    checkpoint_dir = checkpoint_dir or out.with_name(out.name + ".train-state")
    spec = inspect_encoder(params.base)
    if spec.kind == "dpr":
        raise OdqaError("--base: DPR pairs have two encoders; train from a single encoder")
    examples, _ = load_qa_examples(train_files)
    # Every training paragraph is a candidate hard negative, also those of unsampled questions.
    paragraphs, paragraph_ids = paragraph_table(examples)
    examples = sample_examples(examples, max_examples, config.seed)
    positive = np.array([paragraph_ids[(e.title, e.context)] for e in examples], dtype=np.int64)
    negatives = None
    with quiet_transformers():
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, spec.path, "base", "--base")
    task: DenseTrainTask | QuerySideTrainTask
    vectors_info = None
    if params.passage_encoder:
        check_width(params.base, params.passage_encoder)
        vectors, vectors_info = paragraph_vectors(
            paragraphs, params.passage_encoder, scratch_folder(checkpoint_dir, "passages"),
            params.max_passage_length, device=config.device, precision=config.precision,
            progress=progress,
        )
        task = QuerySideTrainTask(examples, params, spec, tokenizer, paragraphs=paragraphs,
                                  positive=positive, vectors=vectors)
    else:
        if params.hard_negatives:
            negatives = bm25_negatives(examples, paragraphs, positive, params.bm25_depth,
                                       scratch_folder(checkpoint_dir, "bm25"))[:, 0]
        task = DenseTrainTask(examples, params, spec, tokenizer, negatives=negatives,
                              paragraphs=paragraphs, positive=positive)
    data = data_files(train_files)
    settings = resume_settings(data, params, max_examples=max_examples)
    model, result = train(
        task, config, checkpoint_dir, resume=resume, time_limit=time_limit,
        stop_after_steps=stop_after_steps, progress=progress, description="train dense",
        settings=settings,
    )
    record: dict[str, Any] = {
        "kind": "dense",
        "mode": "query-side" if params.passage_encoder else "shared",
        "data": data,
        "examples": len(examples),
        "paragraphs": len(paragraphs),
        "hard_negatives": None if negatives is None else int((negatives >= 0).sum()),
        "passage_vectors": vectors_info,
        "encoder": {k: v for k, v in spec.to_dict().items() if k != "path"},
        "params": asdict(params),
        "loop": asdict(config),
        "max_examples": max_examples,
        **run_fields(result),
    }
    if not result.finished:
        return record

    def write(folder: Path) -> None:
        model.eval()
        save_sentence_transformers(model.cpu(), tokenizer, spec, folder)
        write_record(folder, record)

    write_output(out, write)
    discard_checkpoints(checkpoint_dir)
    return json.loads((out / RECORD).read_text(encoding="utf-8"))
