"""Scale-out benchmark: one process against a Dask cluster and against shard + merge.

Per family (BM25 over ``--passages`` synthetic passages, dense over the first
``--dense-passages`` of them), in one run on this machine:

* the one-process build (the default: BM25 tokenised while the corpus is read);
* the same build on a ``LocalCluster`` of ``--workers`` single-threaded worker processes
  (cluster start-up timed apart), with the speedup over one process and its overhead;
* ``--workers`` shards built one after another (as ``--workers`` machines would, each alone)
  and ``odqa merge``: the slowest shard plus the merge is what a sharded build takes;
* a check that every build equals the one-process index (BM25 arrays byte for byte, dense
  vectors to 1e-6);
* a model of N machines from the measured costs: the serial part (reading the corpus, writing
  the passage store, merging the parts into the index, which the driver does alone) plus the
  work units spread over N workers (``ceil(units / N)`` times the mean unit cost), plus the
  cluster's measured per-unit overhead.

usage: python bench/scale.py [--passages 200000] [--dense-passages 10000] [--workers 2]
       [--scheduler tcp://HOST:8786]   (time a real cluster instead of a LocalCluster)
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from odqa import (
    BuildOptions,
    CorpusOptions,
    DaskExecutor,
    DenseOptions,
    InProcess,
    ShardSpec,
    build_index,
    merge_shards,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
MAKE_SYNTHETIC = SHARED / "tools" / "make_synthetic_corpus.py"
BM25_ARRAYS = ("data", "indices", "indptr", "term_base", "doc_lengths")
UNIT_LABELS = {"bm25": "bm25 counting", "dense": "dense encoding"}
MACHINES = (1, 2, 4, 8, 16, 64)


def synthetic_corpus(work: Path, passages: int) -> Path:
    """The synthetic corpus of ``passages`` passages (made once, then reused)."""
    path = work / f"synthetic-{passages}.jsonl"
    if not path.exists():
        subprocess.run([sys.executable, str(MAKE_SYNTHETIC), str(passages), str(path)],
                       check=True)
    return path


def head(path: Path, lines: int, out: Path) -> Path:
    """The first ``lines`` lines of ``path`` as ``out``."""
    if not out.exists():
        with open(path, encoding="utf-8") as source, open(out, "w", encoding="utf-8") as target:
            for number, line in enumerate(source):
                if number == lines:
                    break
                target.write(line)
    return out


def options(family: str) -> BuildOptions:
    dense = DenseOptions(device="cpu", chunk_size=1024) if family == "dense" else None
    return BuildOptions(retrievers=(family,), corpus=CorpusOptions(passage_words=0), dense=dense)


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


def same_index(family: str, expected: Path, got: Path) -> str:
    """'identical' / the largest vector difference, or what differs."""
    if family == "bm25":
        for name in (*BM25_ARRAYS, "vocab"):
            suffix = ".json" if name == "vocab" else ".npy"
            a, b = (p / "bm25" / f"{name}{suffix}" for p in (expected, got))
            if a.read_bytes() != b.read_bytes():
                return f"DIFFERS in {name}"
        return "identical"
    import faiss

    a, b = (faiss.read_index(str(p / "dense" / "index.faiss")) for p in (expected, got))
    diff = float(np.abs(a.reconstruct_n(0, a.ntotal) - b.reconstruct_n(0, b.ntotal)).max())
    return f"max |diff| {diff:.1e}" + ("" if diff <= 1e-6 else " (ABOVE 1e-6)")


def bench_family(family: str, corpus: Path, passages: int, args: argparse.Namespace,
                 work: Path) -> None:
    label = UNIT_LABELS[family]
    print(f"\n## {family}: {passages:,} passages, {args.workers} workers", flush=True)
    one = work / f"{family}-one"
    one_exec = InProcess()
    t_one, _ = timed(build_index, [corpus], one, options(family), force=True, executor=one_exec)
    t_units, units_exec = t_one, one_exec
    if family == "bm25":  # the default streams BM25; its work units are timed in a second build
        units_exec = InProcess(streams=False)
        t_units, _ = timed(build_index, [corpus], work / f"{family}-units", options(family),
                           force=True, executor=units_exec)
    [record] = [r for r in units_exec.history if r.label == label]
    unit_total = sum(record.unit_seconds)
    serial = t_units - unit_total
    mean_unit = unit_total / max(1, record.ran)

    scheduler = args.scheduler or f"local:{args.workers}"
    cluster = DaskExecutor(scheduler)
    t_start, _ = timed(cluster.client)
    t_dask, _ = timed(build_index, [corpus], work / f"{family}-dask", options(family),
                      force=True, executor=cluster)
    [dask_record] = [r for r in cluster.history if r.label == label]
    workers = len(cluster.client().scheduler_info()["workers"])
    cluster.close()

    shard_times = []
    shards = []
    for number in range(args.workers):
        folder = work / f"{family}-shard{number}"
        seconds, _ = timed(build_index, [corpus], folder, options(family), force=True,
                           shard=ShardSpec(number, args.workers))
        shard_times.append(seconds)
        shards.append(folder)
    t_merge, _ = timed(merge_shards, shards, work / f"{family}-merged", force=True)

    waves = math.ceil(record.ran / workers)
    worker_unit = sum(dask_record.unit_seconds) / max(1, dask_record.ran)
    fixed = max(0.0, dask_record.seconds - waves * worker_unit)
    print(f"one process (default):        {t_one:8.1f} s")
    print(f"units in one process:         {t_units:8.1f} s  ({record.ran} units of "
          f"{mean_unit:.2f} s mean; serial part {serial:.1f} s)")
    print(f"LocalCluster, {workers} workers:     {t_dask:8.1f} s  (+{t_start:.1f} s cluster "
          f"start)  speedup {t_one / t_dask:.2f}x over one process; units phase "
          f"{dask_record.seconds:.1f} s for {record.ran} units in {waves} waves, "
          f"{worker_unit:.2f} s per unit on a worker (one thread; {mean_unit:.2f} s in one "
          f"process): {fixed:.1f} s of scheduling and waiting")
    print(f"{args.workers} shards + merge:             shards "
          + ", ".join(f"{s:.1f}" for s in shard_times)
          + f" s, merge {t_merge:.1f} s: {max(shard_times) + t_merge:.1f} s on "
          f"{args.workers} machines ({t_one / (max(shard_times) + t_merge):.2f}x)")
    print(f"equal to one process: cluster {same_index(family, one, work / f'{family}-dask')}, "
          f"merged {same_index(family, one, work / f'{family}-merged')}")
    print(f"model, {passages:,} passages: serial {serial:.1f} s + cluster {fixed:.1f} s + "
          f"ceil({record.ran} units / N) x {worker_unit:.2f} s (N one-thread workers)")
    for n in MACHINES:
        modelled = serial + fixed + math.ceil(record.ran / n) * worker_unit
        print(f"  N = {n:3d}: {modelled:8.1f} s  ({t_one / modelled:5.2f}x one process)")
    scale = 21_000_000 / passages
    wiki = serial * scale + fixed + math.ceil(record.ran * scale / 64) * worker_unit
    print(f"  21M passages (Wikipedia), N = 64: about {wiki:,.0f} s, of which serial "
          f"{serial * scale:,.0f} s (serial part and unit count scaled linearly)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--dense-passages", type=int, default=10_000,
                        help="dense passages (0: skip dense); encoding is the slow part")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", help="a running cluster's address (default: local)")
    parser.add_argument("--work", help="scratch folder (kept; the corpus is reused)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="odqa-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"# odqa scale-out benchmark ({os.cpu_count()} cores, work folder {work})")
    corpus = synthetic_corpus(work, args.passages)
    bench_family("bm25", corpus, args.passages, args, work)
    if args.dense_passages:
        dense = head(corpus, args.dense_passages, work / f"head-{args.dense_passages}.jsonl")
        bench_family("dense", dense, args.dense_passages, args, work)
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
