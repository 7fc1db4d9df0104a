"""The one training loop of odqa: batching, AdamW with linear warm-up/decay, bf16 autocast,
gradient accumulation, a progress bar, checkpoints and exact resume.

A model kind plugs in as a :class:`TrainTask`: it builds the model, says how long each training
item is (for length-bucketed batches) and computes the loss of a batch of items. Everything else
lives here, so every ``odqa train`` command checkpoints, resumes and reports the same way.

Resume is exact: the data order of an epoch is a pure function of (seed, epoch), the learning
rate a pure function of the step, and a checkpoint holds the model, the AdamW moments and the
torch random state (dropout). A run stopped and resumed ends with the same weights, bit for bit,
as one that never stopped. Checkpoints are safetensors and JSON (no pickle).
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from odqa.errors import OdqaError

BUCKET_BATCHES = 50
"""Length bucketing: a shuffled epoch is cut into runs of this many batches, each run sorted by
length and cut into batches, and the batches shuffled: little padding, still random."""

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation settings shared by every training command (all JSON-serialisable)."""

    epochs: int = 1
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"
    checkpoint_minutes: float = 10.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise OdqaError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.warmup < 1:
            raise OdqaError(f"--warmup is a share of the steps in [0, 1), got {self.warmup}")
        if self.lr <= 0:
            raise OdqaError(f"--lr must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise OdqaError(
                f"unknown precision '{self.precision}': choose one of {', '.join(PRECISIONS)}"
            )


class TrainTask(Protocol):
    """What a model kind gives the loop."""

    def build_model(self) -> Any:
        """The torch module to train (trainable parameters have ``requires_grad``)."""

    def item_lengths(self) -> np.ndarray:
        """Length (tokens) of every training item, for length-bucketed batches."""

    def loss(self, model: Any, items: np.ndarray, device: str, autocast: bool) -> Any:
        """Mean loss (a scalar tensor) of the training items ``items``."""


@dataclass
class LoopState:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    items: int = 0
    seconds: float = 0.0
    loss: float = float("nan")
    done: bool = False


@dataclass(frozen=True)
class TrainResult:
    """How a call to :func:`train` ended: ``finished`` is false when stopped by the time limit."""

    state: LoopState
    total_steps: int
    finished: bool
    precision: str
    device: str


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` is bf16 where the hardware computes it natively (CUDA with bf16, CPUs with
    AMX-BF16 or AVX512-BF16)."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    from odqa.runtime.hardware import has_native_bf16

    return "bf16" if has_native_bf16() else "fp32"


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of ``(seed, epoch)`` (see BUCKET_BATCHES)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    run = batch_size * BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for begin in range(0, len(order), run):
        chunk = order[begin : begin + run]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def steps_per_epoch(n_items: int, config: LoopConfig) -> int:
    """Optimizer steps in one epoch (a partial accumulation group at its end is one step)."""
    run = config.batch_size * BUCKET_BATCHES
    full, rest = divmod(n_items, run)
    batches = full * BUCKET_BATCHES + math.ceil(rest / config.batch_size)
    return math.ceil(batches / config.grad_accum)


def learning_rate(step: int, total: int, config: LoopConfig) -> float:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to zero."""
    warm = int(config.warmup * total)
    if step < warm:
        return config.lr * (step + 1) / warm
    return config.lr * max(0.0, (total - step) / max(1, total - warm))


def train(
    task: TrainTask,
    config: LoopConfig,
    checkpoint_dir: Path,
    *,
    resume: bool = False,
    time_limit: float | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    description: str = "training",
    settings: dict[str, Any] | None = None,
) -> tuple[Any, TrainResult]:
    """Train ``task``'s model; return it and how the run ended.

    Args:
        task: the model kind (see :class:`TrainTask`).
        config: optimisation settings.
        checkpoint_dir: where checkpoints are written (every ``config.checkpoint_minutes``, at a
            time limit, on Ctrl-C / SIGTERM and at the end).
        resume: continue from the checkpoint in ``checkpoint_dir``.
        time_limit: seconds after which this call checkpoints and returns unfinished.
        stop_after_steps: stop (with a checkpoint) after this many optimizer steps in total.
        progress: show a progress bar on stderr.
        settings: the model kind's own settings (its parameters, training files, sampling),
            JSON-ready; kept with each checkpoint, and ``resume`` refuses other values.

    Raises:
        OdqaError: for a missing or mismatched checkpoint, or when interrupted (the checkpoint
            is saved first, and the message says how to resume).
    """
    import torch

    from odqa.runtime.hub import resolve_device

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    lengths = np.asarray(task.item_lengths())
    torch.manual_seed(config.seed)
    model = task.build_model().to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(model, config)
    total = steps_per_epoch(len(lengths), config) * config.epochs
    state = LoopState()
    if resume:
        state = _load_checkpoint(checkpoint_dir, model, optimizer, config, device, settings)
    elif checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()) and not (
        checkpoint_dir / "state.json"
    ).is_file():
        raise OdqaError(
            f"checkpoint folder {checkpoint_dir} holds files that are not an odqa checkpoint: "
            "choose another --checkpoint-dir"
        )
    elif (checkpoint_dir / "state.json").is_file():
        raise OdqaError(
            f"{checkpoint_dir} holds a checkpoint of an earlier run: continue it with --resume, "
            "or remove that folder to start again"
        )
    started = time.monotonic()
    last_save = started
    base_seconds = state.seconds
    autocast = precision == "bf16"

    def save() -> None:
        state.seconds = base_seconds + time.monotonic() - started
        _save_checkpoint(checkpoint_dir, model, optimizer, config, state, settings)

    with _progress(progress, description, total, state) as bar, _sigterm_as_interrupt():
        try:
            while state.epoch < config.epochs and not state.done:
                batches = epoch_batches(lengths, config.batch_size, config.seed, state.epoch)
                while state.batch < len(batches):
                    group = batches[state.batch : state.batch + config.grad_accum]
                    loss = 0.0
                    for items in group:
                        value = task.loss(model, items, device, autocast) / len(group)
                        value.backward()
                        loss += float(value.detach())
                    if config.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    for g in optimizer.param_groups:
                        g["lr"] = learning_rate(state.step, total, config)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    state.step += 1
                    state.batch += len(group)
                    state.items += sum(len(items) for items in group)
                    state.loss = loss if math.isnan(state.loss) else 0.98 * state.loss + 0.02 * loss
                    bar(state)
                    now = time.monotonic()
                    out_of_time = time_limit is not None and now - started >= time_limit
                    if stop_after_steps is not None and state.step >= stop_after_steps:
                        out_of_time = True
                    if out_of_time:
                        save()
                        return model, TrainResult(state, total, False, precision, device)
                    if now - last_save >= config.checkpoint_minutes * 60:
                        save()
                        last_save = now
                state.epoch += 1
                state.batch = 0
        except KeyboardInterrupt:
            save()
            raise OdqaError(
                f"training interrupted at step {state.step} of {total}: checkpoint saved in "
                f"{checkpoint_dir}; continue with the same command and --resume"
            ) from None
    state.done = True
    save()
    return model, TrainResult(state, total, True, precision, device)


def _optimizer(model: Any, config: LoopConfig) -> Any:
    """AdamW; biases and LayerNorm weights get no weight decay (the BERT recipe)."""
    import torch

    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def _save_checkpoint(
    folder: Path, model: Any, optimizer: Any, config: LoopConfig, state: LoopState,
    settings: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint next to ``folder`` and swap it in (a crash keeps the previous one)."""
    import torch
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"))
    moments = {"rng.torch": torch.get_rng_state()}
    index = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                moments[f"{key}.{index}"] = torch.as_tensor(value).detach().contiguous().cpu()
            index += 1
    save_file(moments, str(tmp / "optimizer.safetensors"))
    record = {"state": asdict(state), "config": asdict(config), "settings": settings}
    (tmp / "state.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    folder: Path, model: Any, optimizer: Any, config: LoopConfig, device: str,
    settings: dict[str, Any] | None = None,
) -> LoopState:
    """Restore model, AdamW moments and random state; check the settings did not change."""
    import torch
    from safetensors.torch import load_file

    state_file = folder / "state.json"
    if not state_file.is_file():
        raise OdqaError(f"--resume: no checkpoint in {folder} (state.json is missing)")
    record = json.loads(state_file.read_text(encoding="utf-8"))
    saved = record["config"]
    changed = [
        k for k, v in asdict(config).items()
        if k not in ("device", "checkpoint_minutes") and saved.get(k) != v
    ]
    if changed:
        names = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)}" for k in changed)
        raise OdqaError(f"--resume: the checkpoint in {folder} was made with {names}: use those")
    _check_settings(folder, record.get("settings"), settings)
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=device))
    moments = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(moments.pop("rng.torch"))
    index = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            found = {k.rsplit(".", 1)[0]: v for k, v in moments.items()
                     if k.rsplit(".", 1)[1] == str(index)}
            if found:
                optimizer.state[p] = {
                    k: (v if k == "step" else v.to(device)) for k, v in found.items()
                }
            index += 1
    return LoopState(**record["state"])


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops training like Ctrl-C does (so the checkpoint is saved)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress(enabled: bool, description: str, total: int, state: LoopState):
    """A callback that advances a progress bar: steps, examples/s, loss, elapsed, remaining."""
    from odqa.progress import make_progress

    bar = make_progress(enabled)
    first_items, started = state.items, time.monotonic()
    with bar:
        task_id = bar.add_task(description, total=total, completed=state.step,
                               rate="- ex/s", loss="-", unit="steps")

        def update(s: LoopState) -> None:
            elapsed = time.monotonic() - started
            rate = (s.items - first_items) / elapsed if elapsed > 0 else 0.0
            bar.update(task_id, completed=s.step, rate=f"{rate:,.1f} ex/s", loss=f"{s.loss:.3f}")

        yield update


def _check_settings(folder: Path, saved: dict[str, Any] | None, now: dict[str, Any] | None) -> None:
    """Refuse to resume with model settings other than the checkpoint's (one line naming them).

    A checkpoint written before settings were kept (``saved`` None) is not checked.
    """
    if saved is None or now is None:
        return
    now = json.loads(json.dumps(now))  # tuples become lists, as in the saved record
    changed = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if not changed:
        return
    names = ", ".join(
        "other training files" if k == "data" else f"--{k.replace('_', '-')} {saved.get(k)}"
        for k in changed
    )
    raise OdqaError(f"--resume: the checkpoint in {folder} was made with {names}: use those, or "
                    "remove that folder to start again")
