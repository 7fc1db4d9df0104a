"""Dense benchmark: encoding speed against sentence-transformers, and answer recall of bm25,
dense and hybrid retrieval on SQuAD-open.

Corpus: the 2,067 SQuAD v1.1 dev paragraphs, kept whole (title + context). Questions: the
SQuAD-open questions (the same 10,570 dev questions, DPR's answer lists). All in one run:

1. Encoding speed. The same passage texts (``title. context``, a seeded subsample of
   ``--timing-passages``) are encoded by sentence-transformers' ``encode`` and by odqa's encoder
   for each backend (torch, onnx, int8), same model (the packaged all-MiniLM-L6-v2), same batch
   size, same thread count (``--threads``). Runs alternate in ``--rounds`` rounds and the best
   round counts, so a busy machine penalises every system alike. Printed: passages/s and the
   ratio against sentence-transformers.
2. Quality loss of the fast backends: cosine of their passage vectors with the torch ones.
3. Retrieval: ``odqa index --retrievers bm25,dense`` (default settings, flat FAISS) is built on the
   corpus; top-1/5/20/100 answer recall (DPR's has_answer: an answer's tokens occur in the
   passage) for bm25, dense, hybrid (RRF k=60) and hybrid linear (alpha 0.5); then dense and
   hybrid again with the passages and queries encoded by the int8 backend.

usage: python bench/dense.py [--questions N] [--timing-passages 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SQUAD = SHARED / "squad-v1.1" / "dev-v1.1.json"
QUESTIONS = SHARED / "squad-open" / "topics.dpr.squad.test.txt"
BACKENDS = ("torch", "onnx", "int8")
KS = (1, 5, 20, 100)


def read_questions(limit: int | None, seed: int = 0) -> list[dict]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def passage_texts(index) -> list[str]:
    """The text odqa's encoder sees for each passage (title, then text)."""
    return [f"{p.title}. {p.text}" if p.title else p.text for p in index.passages]


def time_encoders(texts: list[str], threads: int, batch_size: int, rounds: int) -> dict:
    """Best-of-rounds passages/s for sentence-transformers and each odqa backend."""
    import torch
    from sentence_transformers import SentenceTransformer

    from odqa.encoders import TextEncoder, inspect_encoder
    from odqa.models import DEFAULT_DENSE_ENCODER, resolve_model

    torch.set_num_threads(threads)
    reference = SentenceTransformer(resolve_model(DEFAULT_DENSE_ENCODER), device="cpu")
    spec = inspect_encoder(DEFAULT_DENSE_ENCODER)
    runners = {"sentence-transformers": lambda: reference.encode(texts, batch_size=batch_size)}
    for backend in BACKENDS:
        encoder = TextEncoder(
            spec, backend=backend, device="cpu", batch_size=batch_size, threads=threads
        )
        encoder.warm_up()
        runners[f"odqa {backend}"] = lambda e=encoder: e.encode(texts)
    best: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            vectors[name] = np.asarray(run())
            elapsed = time.perf_counter() - start
            best[name] = min(best.get(name, float("inf")), elapsed)
    return {"seconds": best, "vectors": vectors}


def recall(index, retriever, questions: list[dict], name: str) -> dict[int, float]:
    from odqa.evaluate import AnswerMatcher, first_hit_rank, top_k_accuracy

    matcher = AnswerMatcher(lambda i: index.passages[i].text)
    start = time.perf_counter()
    ranked = retriever.search_ids([q["question"] for q in questions], max(KS))
    seconds = time.perf_counter() - start
    firsts = [
        first_hit_rank(matcher.matches(q["answer"], ids))
        for q, (ids, _) in zip(questions, ranked, strict=True)
    ]
    scores = top_k_accuracy(firsts, KS)
    print(
        f"  {name:<22}"
        + "".join(f"{100 * scores[k]:>8.1f}" for k in KS)
        + f"   ({len(questions) / seconds:,.0f} q/s)",
        flush=True,
    )
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=None, help="subsample (default: all)")
    parser.add_argument("--timing-passages", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch

    from odqa import load_index
    from odqa.build import BuildOptions, build_index
    from odqa.corpus import CorpusOptions
    from odqa.retrieval.dense import DenseRetriever, build_dense
    from odqa.retrieval.dense_options import DenseOptions
    from odqa.retrieval.hybrid import HybridRetriever

    torch.set_num_threads(args.threads)
    questions = read_questions(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "squad"
        dense = DenseOptions(device="cpu", batch_size=args.batch_size)
        options = BuildOptions(
            corpus=CorpusOptions(format="squad", passage_words=0),
            retrievers=("bm25", "dense"),
            dense=dense,
        )
        start = time.perf_counter()
        manifest = build_index([SQUAD], out, options)
        build_seconds = time.perf_counter() - start
        index = load_index(str(out))
        count = len(index.passages)
        print(f"corpus: {count:,} SQuAD dev paragraphs; {len(questions):,} SQuAD-open questions")
        print(f"index build (bm25 + dense, torch, flat): {build_seconds:.1f} s\n")

        texts = passage_texts(index)
        sample = random.Random(0).sample(texts, min(args.timing_passages, len(texts)))
        timing = time_encoders(sample, args.threads, args.batch_size, args.rounds)
        baseline = timing["seconds"]["sentence-transformers"]
        reference = timing["vectors"]["odqa torch"]
        print(
            f"encoding {len(sample)} passages, {args.threads} threads, batch {args.batch_size}, "
            f"best of {args.rounds} rounds:"
        )
        print(f"  {'system':<24}{'passages/s':>12}{'vs s-t':>9}{'min cos vs torch':>18}")
        for name, seconds in timing["seconds"].items():
            vectors = timing["vectors"][name]
            cos = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1)
            print(
                f"  {name:<24}{len(sample) / seconds:>12.1f}{baseline / seconds:>8.2f}x"
                f"{cos.min():>18.5f}"
            )

        print(f"\nanswer recall (%), top-k:  {''.join(f'{k:>8}' for k in KS)}")
        results = {}
        results["bm25"] = recall(index, index.retriever("bm25"), questions, "bm25")
        results["dense"] = recall(index, index.retriever("dense"), questions, "dense")
        results["hybrid"] = recall(index, index.retriever("hybrid"), questions, "hybrid rrf")
        linear = index.retriever("hybrid", fusion="linear", alpha=0.5)
        results["linear"] = recall(index, linear, questions, "hybrid linear 0.5")

        int8_dir = Path(tmp) / "dense-int8"
        int8_dir.mkdir()
        start = time.perf_counter()
        section = build_dense(int8_dir, index.passages, DenseOptions(backend="int8"), False, None)
        print(f"  (int8 passage encoding of the corpus: {time.perf_counter() - start:.1f} s)")
        int8 = DenseRetriever.load(int8_dir, section)
        results["dense-int8"] = recall(index, int8, questions, "dense int8")
        hybrid_int8 = HybridRetriever(index.retriever("bm25"), int8)
        results["hybrid-int8"] = recall(index, hybrid_int8, questions, "hybrid rrf int8")
        del manifest

    top20 = {name: 100 * scores[20] for name, scores in results.items()}
    print("\ntargets:")
    print(
        f"  hybrid top-20 above bm25 and dense: {top20['hybrid']:.1f} vs "
        f"{top20['bm25']:.1f} / {top20['dense']:.1f}"
    )
    speeds = {name: baseline / s for name, s in timing["seconds"].items()}
    print(f"  default backend vs sentence-transformers: {speeds['odqa torch']:.2f}x (>= 1)")
    print(
        f"  int8 backend: {speeds['odqa int8']:.2f}x (>= 1.5), top-20 dense "
        f"{top20['dense-int8'] - top20['dense']:+.2f} points (within 0.5)"
    )


if __name__ == "__main__":
    main()
