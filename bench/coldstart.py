"""Cold start: one query per process, as shell scripts call odqa.

Each command runs ``--runs`` times (default 5) in a new Python process and the median wall time
counts; peak memory is the child's maximum resident set size. Every command runs twice in the
same benchmark, alternating: once on odqa's torch-free runtime (ONNX Runtime + tokenizers) and
once on the torch path it replaces, so both see the same machine load:

- ``odqa search --retriever dense Q`` and ``--retriever hybrid``: the index as built (query
  encoder exported to ONNX) against a copy without the export, which is what older indexes are
  (queries through torch + transformers).
- ``odqa ask Q`` (BM25 top-20, default reader, ``--backend auto``) against ``--backend torch``.

The index is built first (``--retrievers bm25,dense``, default encoder) from ``--corpus``
(default: the sample corpus in data/), or ``--index`` is used as it is. The ONNX cache is a fresh
folder, so the first ``odqa ask`` exports the reader (reported as "first use") and the timed runs
load the export. The OS file cache is warm after the first run, as it is for scripts calling
odqa repeatedly. Each child reports which of torch / transformers it imported.

    python bench/coldstart.py [--runs 5] [--corpus FILE | --index DIR] [--reader MODEL]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Who received a patent for the telephone?"
TARGETS = {"search dense": 1.0, "search hybrid": 1.0, "ask": 1.5}
PROBE = """
import atexit, sys
heavy = ("torch", "transformers")
atexit.register(lambda: print("HEAVY=" + ",".join(m for m in heavy if m in sys.modules),
                              file=sys.stderr))
from odqa.cli import app
sys.argv = ["odqa", *sys.argv[1:]]
app()
"""


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float, list[str]]:
    """Wall seconds, peak RSS (MiB) and heavy modules of one ``odqa ARGS`` process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", PROBE, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"odqa {' '.join(args)} failed ({code}):\n{stderr}")
    lines = [x for x in stderr.splitlines() if x.startswith("HEAVY=")]
    heavy = [m for m in lines[-1].removeprefix("HEAVY=").split(",") if m] if lines else []
    return seconds, usage.ru_maxrss / 1024, heavy


def build_index(corpus: Path, out: Path, env: dict[str, str]) -> None:
    """``odqa index CORPUS --out OUT`` (bm25 + dense, default encoder)."""
    command = ["index", str(corpus), "--out", str(out), "--retrievers", "bm25,dense", "-q"]
    subprocess.run([sys.executable, "-c", PROBE, *command], check=True, env=env)


def without_export(index: Path, copy: Path) -> Path:
    """A copy of ``index`` as older odqa versions wrote it: no ONNX query encoder."""
    shutil.copytree(index, copy, ignore=shutil.ignore_patterns("query_onnx"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["families"]["dense"].pop("query_onnx", None)
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "sample_corpus.jsonl")
    parser.add_argument("--index", type=Path, help="an existing bm25+dense index to use")
    parser.add_argument("--reader", help="reader model (default: odqa's default reader)")
    args = parser.parse_args()

    from odqa import DEFAULT_READER, packaged_model_path

    if args.reader is None and packaged_model_path(DEFAULT_READER) is None:
        raise SystemExit(
            f"the default reader {DEFAULT_READER} is not installed here; give --reader MODEL"
        )
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "ODQA_CACHE": str(Path(tmp) / "cache")}
        index = args.index
        if index is None:
            index = Path(tmp) / "index"
            started = time.perf_counter()
            build_index(args.corpus, index, env)
            print(f"index built from {args.corpus.name} in {time.perf_counter() - started:.1f} s")
        old = without_export(index, Path(tmp) / "index-without-export")
        reader = ["--reader", args.reader] if args.reader else []
        ask = ["ask", QUESTION, "-i", str(index), "--passages", "20", *reader]
        commands = {
            "search dense": (
                ["search", QUESTION, "-i", str(index), "--retriever", "dense"],
                ["search", QUESTION, "-i", str(old), "--retriever", "dense"],
            ),
            "search hybrid": (
                ["search", QUESTION, "-i", str(index), "--retriever", "hybrid"],
                ["search", QUESTION, "-i", str(old), "--retriever", "hybrid"],
            ),
            "ask": (ask, [*ask, "--backend", "torch"]),
        }
        first, _, _ = run_once(ask, env)
        print(f"odqa ask, first use (exports the reader to ONNX): {first:.2f} s")
        for fast, slow in commands.values():  # warm the OS file cache for both paths
            run_once(fast, env), run_once(slow, env)
        results: dict[str, dict[str, list]] = {}
        for _ in range(args.runs):
            for name, (fast, slow) in commands.items():
                for label, command in (("onnx", fast), ("torch", slow)):
                    results.setdefault(name, {}).setdefault(label, []).append(
                        run_once(command, env)
                    )
    print(f"\nmedian of {args.runs} cold runs (new process each), seconds; peak RSS MiB")
    header = f"{'command':<16}{'odqa onnx':>11}{'torch path':>12}{'speed-up':>10}"
    print(header + f"{'peak onnx':>11}{'peak torch':>12}{'target':>8}  imports (onnx run)")
    for name, runs in results.items():
        fast = statistics.median(r[0] for r in runs["onnx"])
        slow = statistics.median(r[0] for r in runs["torch"])
        peak_fast = max(r[1] for r in runs["onnx"])
        peak_slow = max(r[1] for r in runs["torch"])
        heavy = sorted({m for r in runs["onnx"] for m in r[2]}) or ["no torch, no transformers"]
        verdict = "met" if fast < TARGETS[name] else "MISSED"
        print(
            f"{name:<16}{fast:>11.2f}{slow:>12.2f}{slow / fast:>9.2f}x{peak_fast:>11.0f}"
            f"{peak_slow:>12.0f}{f'< {TARGETS[name]}':>8}  {verdict}; {', '.join(heavy)}"
        )


if __name__ == "__main__":
    main()
