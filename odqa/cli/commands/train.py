"""`odqa train`: fine-tune the models odqa uses (`reader`, `dense`, `phrase`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from odqa.cli.commands._choices import Device, SaveMode, TrainPrecision
from odqa.cli.commands._common import err_console, fail_on_error

app = typer.Typer(
    name="train",
    help="Fine-tune odqa's models on your data (checkpoints, --resume, bf16 on capable CPUs).",
    no_args_is_help=True,
)

LOOP = "Optimisation"
RUN = "Run control"



Epochs = Annotated[int, typer.Option(min=1, help="Passes over the data.", rich_help_panel=LOOP)]
Lr = Annotated[float, typer.Option(help="Peak learning rate (AdamW).", rich_help_panel=LOOP)]
BatchSize = Annotated[int, typer.Option(min=1, help="Items per batch.", rich_help_panel=LOOP)]
GradAccum = Annotated[
    int, typer.Option(min=1, help="Batches per optimizer step.", rich_help_panel=LOOP)
]
Warmup = Annotated[
    float, typer.Option(help="Share of steps with linear warm-up.", rich_help_panel=LOOP)
]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay.", rich_help_panel=LOOP)]
Seed = Annotated[int, typer.Option(help="Seed of sampling, data order and init.",
                                   rich_help_panel=LOOP)]
MaxExamples = Annotated[
    int | None,
    typer.Option(min=1, help="Train on a seeded random sample of this many questions."),
]
DeviceOpt = Annotated[Device, typer.Option(help="auto, cpu or cuda.", rich_help_panel=RUN)]
PrecisionOpt = Annotated[
    TrainPrecision,
    typer.Option(help="auto = bf16 autocast on AMX/AVX512-BF16 CPUs and CUDA, else fp32.",
                 rich_help_panel=RUN),
]
CheckpointMinutes = Annotated[
    float, typer.Option(help="Minutes between checkpoints.", rich_help_panel=RUN)
]
CheckpointDir = Annotated[
    Path | None, typer.Option(help="Checkpoint folder (default: OUT.train-state).",
                              rich_help_panel=RUN)
]
Resume = Annotated[
    bool, typer.Option(help="Continue from the checkpoint, exactly.", rich_help_panel=RUN)
]
TimeLimit = Annotated[
    float | None,
    typer.Option(help="Stop after this many minutes with a checkpoint (resume later).",
                 rich_help_panel=RUN),
]
Force = Annotated[bool, typer.Option(help="Replace an odqa model already in --out.")]


LOOP_FIELDS = ("epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup", "seed",
               "checkpoint_minutes")


def loop_options(given: dict) -> dict:
    """The optimisation options every `odqa train` command shares, by name."""
    return {name: given[name] for name in LOOP_FIELDS}


def _report(record: dict, checkpoint: Path) -> None:
    if not record["finished"]:
        err_console.print(
            f"paused at step {record['steps']} of {record['total_steps']}: checkpoint in "
            f"{checkpoint}; run the same command with --resume to continue"
        )
        return
    typer.echo(json.dumps(record, indent=2))


@app.command("reader")
def reader_command(
    train_files: Annotated[list[Path], typer.Argument(help="SQuAD JSON or JSON lines files.")],
    out: Annotated[Path, typer.Option(help="Folder for the trained model.")],
    base: Annotated[str, typer.Option(help="Encoder to start from (hub id or folder).")] = (
        "sentence-transformers/all-MiniLM-L6-v2"
    ),
    epochs: Epochs = 2,
    lr: Lr = 1e-4,
    batch_size: BatchSize = 32,
    grad_accum: GradAccum = 1,
    warmup: Warmup = 0.1,
    weight_decay: WeightDecay = 0.01,
    seed: Seed = 42,
    max_examples: MaxExamples = None,
    max_seq_length: Annotated[int, typer.Option(min=32, help="Tokens per window.")] = 384,
    doc_stride: Annotated[int, typer.Option(min=0, help="Tokens shared by windows.")] = 128,
    freeze_embeddings: Annotated[
        bool, typer.Option(help="Keep the base's embeddings fixed (needed by --save delta).")
    ] = True,
    drop_offset_source: Annotated[
        list[str] | None,
        typer.Option(help="Skip questions whose offset_source is this (repeatable)."),
    ] = None,
    sample_start: Annotated[
        int, typer.Option(min=0, help="Skip this many questions of the seeded sample order "
                                      "(a later run trains on new ones).")
    ] = 0,
    negatives: Annotated[
        int, typer.Option(min=0, help="BM25 negative paragraphs per question, read with "
                                      "shared normalisation (0: gold paragraphs only).")
    ] = 0,
    bm25_depth: Annotated[
        int, typer.Option(min=1, help="BM25 results searched for negatives.")
    ] = 20,
    init: Annotated[
        str | None, typer.Option(help="Reader to start from (its --base's architecture); "
                                      "default: --base with a new span head.")
    ] = None,
    save: Annotated[
        SaveMode, typer.Option(help="full: HF folder; delta: only what differs from --base, "
                                    "fp16 (small).")
    ] = SaveMode.full,
    eval_file: Annotated[
        Path | None, typer.Option("--eval", help="SQuAD JSON: report EM/F1 at the end.")
    ] = None,
    eval_limit: Annotated[int | None, typer.Option(min=1, help="First N eval questions.")] = None,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = TrainPrecision.auto,
    checkpoint_minutes: CheckpointMinutes = 10.0,
    checkpoint_dir: CheckpointDir = None,
    resume: Resume = False,
    time_limit: TimeLimit = None,
    force: Force = False,
) -> None:
    """Fine-tune an encoder as an extractive reader (SQuAD-style span prediction)."""
    with fail_on_error():
        from odqa.training.loop import LoopConfig
        from odqa.training.reader import ReaderTrainParams
        from odqa.training.run_reader import train_reader

        config = LoopConfig(
            **loop_options(locals()), device=device.value, precision=precision.value
        )
        params = ReaderTrainParams(
            base=base, max_seq_length=max_seq_length, doc_stride=doc_stride,
            freeze_embeddings=freeze_embeddings, negatives=negatives, bm25_depth=bm25_depth,
            init=init,
        )
        checkpoint = checkpoint_dir or out.with_name(out.name + ".train-state")
        record = train_reader(
            train_files, out, params, config, max_examples=max_examples,
            sample_start=sample_start,
            drop_offset_sources=tuple(drop_offset_source or ()), checkpoint_dir=checkpoint,
            resume=resume, force=force,
            time_limit=None if time_limit is None else time_limit * 60,
            eval_file=eval_file, eval_limit=eval_limit, save=save.value,
        )
        _report(record, checkpoint)


@app.command("dense")
def dense_command(
    train_files: Annotated[
        list[Path], typer.Argument(help="SQuAD JSON or JSON lines (question, context) files.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the trained encoder.")],
    base: Annotated[
        str | None,
        typer.Option(help="Encoder to start from (hub id or folder); default "
                     "all-MiniLM-L6-v2, or the --passage-encoder when one is given."),
    ] = None,
    epochs: Epochs = 1,
    lr: Lr = 2e-5,
    batch_size: BatchSize = 32,
    grad_accum: GradAccum = 1,
    warmup: Warmup = 0.1,
    weight_decay: WeightDecay = 0.01,
    seed: Seed = 42,
    max_examples: MaxExamples = None,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature of the contrastive loss.")
    ] = 0.05,
    hard_negatives: Annotated[
        bool, typer.Option(help="Add one BM25 hard negative per question.")
    ] = True,
    bm25_depth: Annotated[
        int, typer.Option(min=1, help="BM25 results searched for a hard negative.")
    ] = 20,
    passage_encoder: Annotated[
        str | None,
        typer.Option(help="Query-side training: keep this passage encoder fixed, score each "
                     "question against every training paragraph, train only a question "
                     "encoder (index with --encoder THIS --query-encoder OUT)."),
    ] = None,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = TrainPrecision.auto,
    checkpoint_minutes: CheckpointMinutes = 10.0,
    checkpoint_dir: CheckpointDir = None,
    resume: Resume = False,
    time_limit: TimeLimit = None,
    force: Force = False,
) -> None:
    """Fine-tune a dense encoder on (question, gold paragraph) pairs with in-batch and BM25
    hard negatives; the result loads with `odqa index --encoder OUT`."""
    with fail_on_error():
        from odqa.training.dense import DenseTrainParams
        from odqa.training.loop import LoopConfig
        from odqa.training.run_dense import train_dense

        config = LoopConfig(
            **loop_options(locals()), device=device.value, precision=precision.value
        )
        # Query-side training scores every paragraph: no BM25 negatives to add.
        params = DenseTrainParams(base=base or passage_encoder or DenseTrainParams.base,
                                  temperature=temperature,
                                  hard_negatives=hard_negatives and not passage_encoder,
                                  bm25_depth=bm25_depth, passage_encoder=passage_encoder)
        checkpoint = checkpoint_dir or out.with_name(out.name + ".train-state")
        record = train_dense(
            train_files, out, params, config, max_examples=max_examples,
            checkpoint_dir=checkpoint, resume=resume, force=force,
            time_limit=None if time_limit is None else time_limit * 60,
        )
        _report(record, checkpoint)


@app.command("phrase")
def phrase_command(
    train_files: Annotated[list[Path], typer.Argument(help="SQuAD JSON or JSON lines files.")],
    out: Annotated[Path, typer.Option(help="Folder for the trained phrase model.")],
    base: Annotated[str, typer.Option(help="Encoder to start from (hub id or folder).")] = (
        "sentence-transformers/all-MiniLM-L6-v2"
    ),
    epochs: Epochs = 1,
    lr: Lr = 1e-4,
    batch_size: BatchSize = 32,
    grad_accum: GradAccum = 1,
    warmup: Warmup = 0.1,
    weight_decay: WeightDecay = 0.01,
    seed: Seed = 42,
    max_examples: MaxExamples = None,
    max_seq_length: Annotated[int, typer.Option(min=32, help="Tokens per passage window.")] = 384,
    doc_stride: Annotated[int, typer.Option(min=0, help="Tokens shared by windows.")] = 128,
    lambda_filter: Annotated[float, typer.Option(help="Weight of the filter loss.")] = 1.0,
    freeze_embeddings: Annotated[
        bool, typer.Option(help="Keep the base's embeddings fixed (needed by --save delta).")
    ] = True,
    drop_offset_source: Annotated[
        list[str] | None,
        typer.Option(help="Skip questions whose offset_source is this (repeatable)."),
    ] = None,
    save: Annotated[
        SaveMode, typer.Option(help="full: every tensor; delta: only what differs from --base.")
    ] = SaveMode.full,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = TrainPrecision.auto,
    checkpoint_minutes: CheckpointMinutes = 10.0,
    checkpoint_dir: CheckpointDir = None,
    resume: Resume = False,
    time_limit: TimeLimit = None,
    force: Force = False,
) -> None:
    """Train a phrase encoder: query-independent start/end vectors for every passage token
    (index it with `odqa index --retrievers phrase --phrase-encoder OUT`)."""
    with fail_on_error():
        from odqa.training.loop import LoopConfig
        from odqa.training.phrase import PhraseTrainParams
        from odqa.training.run_phrase import train_phrase

        config = LoopConfig(
            **loop_options(locals()), device=device.value, precision=precision.value
        )
        params = PhraseTrainParams(base=base, max_length=max_seq_length, doc_stride=doc_stride,
                                   lambda_filter=lambda_filter,
                                   freeze_embeddings=freeze_embeddings)
        checkpoint = checkpoint_dir or out.with_name(out.name + ".train-state")
        record = train_phrase(
            train_files, out, params, config, max_examples=max_examples,
            drop_offset_sources=tuple(drop_offset_source or ()), checkpoint_dir=checkpoint,
            resume=resume, force=force,
            time_limit=None if time_limit is None else time_limit * 60, save=save.value,
        )
        _report(record, checkpoint)
