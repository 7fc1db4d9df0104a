"""BM25 benchmark: odqa against bm25s and rank-bm25 on SQuAD dev and a large synthetic corpus.

For each corpus and system a fresh single-threaded subprocess builds an index from the same JSON
lines file (passages kept whole, ``title\\ntext`` indexed, odqa's English stopwords and PyStemmer
English stemmer, k1 = 0.9, b = 0.4), saves it, loads it back and answers SQuAD-open questions
(k = 100, tokenisation included). Printed: build time, index size on disk, peak memory (ru_maxrss),
queries/s, and the ratios against bm25s measured in the same run; then how often odqa's and
bm25s's rankings agree.

bm25s runs ``method="lucene"`` (odqa's default variant). rank-bm25 has no Lucene variant, so it
runs BM25Okapi with the same k1, b and tokens (the same work per query); it is slow, so it answers
questions only for RANK_BM25_SECONDS (a subsample) and is skipped on corpora above
``--rank-bm25-max-passages``. bm25s saves the same passage records as odqa's passage store.

usage: python bench/bm25.py [--passages 1000000] [--queries 2000] [--large-queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
SQUAD = SHARED / "data" / "squad-v1.1" / "dev-v1.1.json"
QUESTIONS = SHARED / "data" / "squad-open" / "topics.dpr.squad.test.txt"
MAKE_SYNTHETIC = SHARED / "tools" / "make_synthetic_corpus.py"
SYSTEMS = ("odqa", "bm25s", "rank_bm25")
SINGLE_THREAD = {
    name: "1"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
}
K = 100
REPEAT_SECONDS = 5.0
RANK_BM25_SECONDS = 20.0


# ----------------------------------------------------------------------------- worker side


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON lines corpus, streamed (never all held at once)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def indexed_text(record: dict[str, Any]) -> str:
    """What odqa indexes for a passage: title, newline, text (see odqa.build.bm25_text)."""
    title = record.get("title") or ""
    return f"{title}\n{record['text']}" if title else record["text"]


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_queries(search, queries: list[str], repeat: int) -> tuple[float, Any]:
    """Best queries/s of ``search(queries)`` over up to ``repeat`` runs (fewer once runs add up
    to REPEAT_SECONDS), and the last run's result."""
    best, result, spent = 0.0, None, 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        result = search(queries)
        elapsed = time.perf_counter() - started
        best, spent = max(best, len(queries) / elapsed), spent + elapsed
        if spent > REPEAT_SECONDS:
            break
    return best, result


def pad(rows: list[np.ndarray], fill: float, dtype: type) -> np.ndarray:
    """Ragged per-query lists as an (n, K) array padded with ``fill``."""
    out = np.full((len(rows), K), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:K]
    return out


def run_odqa(corpus: Path, queries: list[str], work: Path, repeat: int) -> dict[str, Any]:
    from odqa import load_index
    from odqa.build import BuildOptions, build_index, directory_size
    from odqa.corpus import CorpusOptions

    out = work / "odqa-index"
    started = time.perf_counter()
    build_index([corpus], out, BuildOptions(corpus=CorpusOptions(passage_words=0)), force=True)
    build_s = time.perf_counter() - started
    build_mb = peak_mb()
    retriever = load_index(str(out)).retriever("bm25")

    qps, ranked = time_queries(lambda batch: retriever.search_ids(batch, K), queries, repeat)
    return {
        "build_s": build_s,
        "index_mb": directory_size(out) / 2**20,
        "bm25_mb": directory_size(out / "bm25") / 2**20,
        "build_peak_mb": build_mb,
        "qps": qps,
        "ids": pad([ids for ids, _ in ranked], -1, np.int64),
        "scores": pad([scores for _, scores in ranked], np.nan, np.float32),
        "backend": "numpy/scipy, batched sparse product",
    }


def run_bm25s(corpus: Path, queries: list[str], work: Path, repeat: int) -> dict[str, Any]:
    import bm25s
    import Stemmer

    from odqa.text import ENGLISH_STOPWORDS, WORD_RE

    stemmer = Stemmer.Stemmer("english")
    stopwords = sorted(ENGLISH_STOPWORDS)
    pattern = WORD_RE.pattern
    out = work / "bm25s-index"
    started = time.perf_counter()
    texts = (indexed_text(r) for r in read_records(corpus))
    tokens = bm25s.tokenize(
        texts, token_pattern=pattern, stopwords=stopwords, stemmer=stemmer, show_progress=False
    )
    model = bm25s.BM25(k1=0.9, b=0.4, method="lucene", backend="numpy")
    model.index(tokens, show_progress=False)
    del tokens
    model.save(str(out), corpus=read_records(corpus), show_progress=False)
    build_s = time.perf_counter() - started
    build_mb = peak_mb()
    del model
    model = bm25s.BM25.load(str(out))

    def search(batch: list[str]) -> np.ndarray:
        query_tokens = bm25s.tokenize(
            batch,
            token_pattern=pattern,
            stopwords=stopwords,
            stemmer=stemmer,
            return_ids=False,
            show_progress=False,
        )
        return model.retrieve(query_tokens, k=K, n_threads=0, show_progress=False)

    qps, found = time_queries(search, queries, repeat)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    arrays = sum(p.stat().st_size for p in out.glob("*.npy"))
    return {
        "build_s": build_s,
        "index_mb": size / 2**20,
        "bm25_mb": arrays / 2**20,
        "build_peak_mb": build_mb,
        "qps": qps,
        "ids": found.documents.astype(np.int64),
        "scores": found.scores.astype(np.float32),
        "backend": f"{model.backend} scoring, numpy top-k, n_threads=0, bm25s {bm25s.__version__}",
    }


def run_rank_bm25(corpus: Path, queries: list[str], work: Path, repeat: int) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    from odqa.text import Analyzer

    analyzer = Analyzer()
    started = time.perf_counter()
    tokens = [analyzer.tokenize(indexed_text(r)) for r in read_records(corpus)]
    model = BM25Okapi(tokens, k1=0.9, b=0.4)
    del tokens
    build_s = time.perf_counter() - started
    build_mb = peak_mb()
    answered, started = 0, time.perf_counter()
    for query in queries:
        scores = model.get_scores(analyzer.tokenize(query))
        top = np.argpartition(-scores, K - 1)[:K] if len(scores) > K else np.arange(len(scores))
        top[np.argsort(-scores[top], kind="stable")]
        answered += 1
        if time.perf_counter() - started > RANK_BM25_SECONDS:
            break
    return {
        "build_s": build_s,
        "index_mb": float("nan"),
        "bm25_mb": float("nan"),
        "build_peak_mb": build_mb,
        "qps": answered / (time.perf_counter() - started),
        "queries": answered,
        "backend": "BM25Okapi (in memory, no on-disk format)",
    }


RUNNERS = {"odqa": run_odqa, "bm25s": run_bm25s, "rank_bm25": run_rank_bm25}


def worker(args: argparse.Namespace) -> None:
    """Run one system on one corpus and write its figures to ``args.result``."""
    work = Path(args.work)
    queries = Path(args.query_file).read_text(encoding="utf-8").splitlines()
    result = RUNNERS[args.worker](Path(args.corpus), queries, work, args.repeat)
    for name in ("ids", "scores"):
        if name in result:
            np.save(work / f"{args.worker}.{name}.npy", result.pop(name), allow_pickle=False)
    result.setdefault("queries", len(queries))
    result["peak_mb"] = peak_mb()
    Path(args.result).write_text(json.dumps(result))


# ----------------------------------------------------------------------------- driver side


def write_squad_corpus(path: Path) -> int:
    """The 2,067 SQuAD dev paragraphs as JSON lines (id ``title#n``); returns the count."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for article in data:
            title = article["title"]
            for i, paragraph in enumerate(article["paragraphs"]):
                record = {"id": f"{title}#{i}", "title": title.replace("_", " ")}
                record["text"] = paragraph["context"]
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def sample_questions(n: int, seed: int = 0) -> list[str]:
    """``n`` SQuAD-open questions drawn without replacement (all of them when n exceeds it)."""
    with open(QUESTIONS, encoding="utf-8") as handle:
        questions = [json.loads(line)["question"].replace("\n", " ") for line in handle]
    if n >= len(questions):
        return questions
    return random.Random(seed).sample(questions, n)


def run_system(
    system: str, corpus: Path, questions: list[str], work: Path, repeat: int
) -> dict[str, Any]:
    """Run ``system`` in a fresh single-threaded subprocess and return its figures."""
    folder = work / system
    folder.mkdir(parents=True, exist_ok=True)
    query_file, result = folder / "queries.txt", folder / "result.json"
    query_file.write_text("\n".join(questions) + "\n", encoding="utf-8")
    command = [
        sys.executable,
        __file__,
        "--worker",
        system,
        "--corpus",
        str(corpus),
        "--query-file",
        str(query_file),
        "--work",
        str(folder),
        "--result",
        str(result),
        "--repeat",
        str(repeat),
    ]
    subprocess.run(command, check=True, env={**os.environ, **SINGLE_THREAD})
    figures = json.loads(result.read_text())
    for name in ("ids", "scores"):
        if (folder / f"{system}.{name}.npy").exists():
            figures[name] = np.load(folder / f"{system}.{name}.npy")
    for index in folder.glob("*-index"):
        shutil.rmtree(index)
    return figures


def agreement(a: np.ndarray, b: np.ndarray, depth: int) -> tuple[float, float]:
    """Mean share of common ids in the top ``depth`` and share of identical top-``depth`` lists."""
    a, b = a[:, :depth], b[:, :depth]
    overlap = [len(set(x[x >= 0]) & set(y[y >= 0])) / depth for x, y in zip(a, b)]
    identical = [np.array_equal(x, y) for x, y in zip(a, b)]
    return float(np.mean(overlap)), float(np.mean(identical))


def score_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest rank-by-rank score difference, relative to the best score, over hits in both."""
    both = ~np.isnan(a) & ~np.isnan(b)
    scale = np.nanmax(np.abs(b), axis=1, keepdims=True)
    return float(np.max(np.abs(a - b)[both] / np.broadcast_to(scale, a.shape)[both], initial=0))


def report(name: str, passages: int, results: dict[str, dict[str, Any]]) -> None:
    """Print one corpus's table, ratios against bm25s, and the odqa/bm25s agreement."""
    base = results["bm25s"]
    print(f"\n== {name}: {passages:,} passages, k = {K}, single thread ==")
    print(
        f"{'system':<10} {'build s':>9} {'bm25s/x':>8} {'index MiB':>10} {'arrays MiB':>11} "
        f"{'peak MiB':>9} {'queries':>8} {'q/s':>9} {'x/bm25s':>8}"
    )
    for system, r in results.items():
        print(
            f"{system:<10} {r['build_s']:>9.2f} {base['build_s'] / r['build_s']:>8.2f} "
            f"{r['index_mb']:>10.1f} {r['bm25_mb']:>11.1f} {r['peak_mb']:>9.0f} "
            f"{r['queries']:>8} {r['qps']:>9.1f} {r['qps'] / base['qps']:>8.2f}"
        )
    print("build bm25s/x: bm25s build time / this one (> 1: faster build than bm25s)")
    print("q/s x/bm25s: this system's queries/s / bm25s's (> 1: faster search than bm25s)")
    if "rank_bm25" in results:
        ratio = results["odqa"]["qps"] / results["rank_bm25"]["qps"]
        print(f"odqa q/s / rank-bm25 q/s = {ratio:.0f}")
    for system, r in results.items():
        print(f"  {system}: {r['backend']}")
    odqa, bm25s = results["odqa"], base
    for depth in (10, K):
        overlap, identical = agreement(odqa["ids"], bm25s["ids"], depth)
        print(
            f"odqa vs bm25s top-{depth}: {overlap:.2%} common ids, "
            f"{identical:.2%} of queries with identical ranked lists"
        )
    gap = score_gap(odqa["scores"], bm25s["scores"])
    print(f"odqa vs bm25s scores, rank by rank: largest difference {gap:.1e} of the top score")


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's figures over several runs: the fastest build and the fastest search."""
    best = dict(runs[0])
    best["build_s"] = min(r["build_s"] for r in runs)
    best["qps"] = max(r["qps"] for r in runs)
    best["peak_mb"] = max(r["peak_mb"] for r in runs)
    return best


def bench_corpus(
    name: str,
    corpus: Path,
    passages: int,
    n_queries: int,
    rounds: int,
    args: argparse.Namespace,
    work: Path,
) -> None:
    """Benchmark every system on one corpus and print the report.

    With several rounds the systems take turns (bm25s, odqa, rank-bm25, bm25s, ...), so a
    change in machine load touches all of them alike; each keeps its best figures.
    """
    questions = sample_questions(n_queries)
    systems = ["bm25s", "odqa"]
    if passages <= args.rank_bm25_max_passages:
        systems.append("rank_bm25")
    else:
        print(f"rank-bm25 skipped on {name} ({passages:,} > --rank-bm25-max-passages)")
    runs: dict[str, list[dict[str, Any]]] = {system: [] for system in systems}
    for _ in range(rounds):
        for system in systems:
            repeat = 1 if system == "rank_bm25" else args.repeat
            runs[system].append(run_system(system, corpus, questions, work / name, repeat))
    report(name, passages, {system: best_of(r) for system, r in runs.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000, help="synthetic corpus size")
    parser.add_argument("--queries", type=int, default=2000, help="questions on SQuAD dev")
    parser.add_argument(
        "--large-queries", type=int, default=200, help="questions on the synthetic corpus"
    )
    parser.add_argument(
        "--rank-bm25-max-passages",
        type=int,
        default=200_000,
        help="skip rank-bm25 above this corpus size (it needs minutes per hundred questions)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help=f"query runs, best kept (stops after {REPEAT_SECONDS} s)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved runs per system on SQuAD dev"
    )
    parser.add_argument(
        "--large-rounds", type=int, default=1, help="interleaved runs per system, synthetic"
    )
    parser.add_argument("--skip-squad", action="store_true")
    parser.add_argument("--work", help="scratch folder (kept; the synthetic corpus is reused)")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--query-file", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="odqa-bm25-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"scratch folder: {work}")
    if not args.skip_squad:
        squad = work / "squad-dev.jsonl"
        passages = write_squad_corpus(squad)
        bench_corpus("squad-dev", squad, passages, args.queries, args.rounds, args, work)
    if args.passages > 0:
        synthetic = work / f"synthetic-{args.passages}.jsonl"
        if not synthetic.exists():
            command = [sys.executable, str(MAKE_SYNTHETIC), str(args.passages), str(synthetic)]
            subprocess.run(command, check=True)
        bench_corpus(
            "synthetic", synthetic, args.passages, args.large_queries, args.large_rounds, args, work
        )
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
