"""Dense benchmark: encoding speed against sentence-transformers, and answer recall of bm25,
dense and hybrid retrieval on SQuAD-open.

Corpus: the 2,067 SQuAD v1.1 dev paragraphs, kept whole (title + context). Questions: the
SQuAD-open questions (the same 10,570 dev questions, DPR's answer lists). All in one run:

1. Encoding speed. The same passage texts (``title. context``, a seeded subsample of
   ``--timing-passages``) are encoded by sentence-transformers' ``encode`` in each of its CPU
   configurations (torch fp32; torch under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
   ``backend="onnx"`` and its int8 quantisation when optimum is installed) and by odqa's encoder
   in each of its own (torch fp32, torch bf16, onnx, int8, OpenVINO bf16), same model (the
   packaged all-MiniLM-L6-v2), same thread count (``--threads``), at each batch size of
   ``--batch-size`` (a comma list: every system is timed at each, and each system's best batch
   size counts, so no one is held to a size that suits another). Runs alternate in ``--rounds``
   rounds and the best round counts, so a busy machine penalises every system alike. Printed:
   passages/s, the ratio against sentence-transformers fp32, and odqa's best against
   sentence-transformers' best.
2. Quality loss of the fast configurations: cosine of their passage vectors with odqa torch fp32.
   Also printed: what ``--precision auto`` picks on this CPU (bf16 only with native bf16:
   AMX-BF16 or AVX512-BF16).
3. Retrieval (skip with ``--no-recall``): ``odqa index --retrievers bm25,dense`` (default settings,
   flat FAISS, fp32) is built on the corpus; top-1/5/20/100 answer recall (DPR's has_answer: an
   answer's tokens occur in the passage) for bm25, dense, hybrid (RRF k=60) and hybrid linear
   (alpha 0.5); then dense and hybrid again with the passages encoded in bf16 and with passages
   and queries encoded by the int8 backend, and with passages encoded by OpenVINO in bf16.

usage: python bench/dense.py [--questions N] [--timing-passages 512] [--threads 2]
       [--batch-size 16,32,64] [--no-recall]
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
ODQA_CONFIGS = {  # name: (backend, precision)
    "odqa torch fp32": ("torch", "fp32"),
    "odqa torch bf16": ("torch", "bf16"),
    "odqa onnx": ("onnx", "auto"),
    "odqa int8": ("int8", "auto"),
    "odqa openvino bf16": ("openvino", "bf16"),
}
KS = (1, 5, 20, 100)


def read_questions(limit: int | None, seed: int = 0) -> list[dict]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def peer_runners(texts: list[str], batch_sizes: list[int]) -> dict:
    """sentence-transformers in each CPU configuration it documents (ONNX ones need optimum),
    each loaded once and run at every batch size (keys ``"name @ batch"``)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from odqa import DEFAULT_DENSE_ENCODER, resolve_model

    path = resolve_model(DEFAULT_DENSE_ENCODER)
    model = SentenceTransformer(path, device="cpu")

    def bf16(batch_size: int):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.encode(texts, batch_size=batch_size)

    configurations = {
        "s-t torch fp32": lambda batch_size: model.encode(texts, batch_size=batch_size),
        "s-t torch bf16 autocast": bf16,
    }
    try:
        onnx_model = SentenceTransformer(path, device="cpu", backend="onnx")
        configurations["s-t onnx"] = lambda b: onnx_model.encode(texts, batch_size=b)
        from sentence_transformers import export_dynamic_quantized_onnx_model

        with tempfile.TemporaryDirectory() as tmp:
            onnx_model.save(tmp)
            export_dynamic_quantized_onnx_model(onnx_model, "avx512_vnni", tmp)
            quantized = SentenceTransformer(
                tmp, device="cpu", backend="onnx",
                model_kwargs={"file_name": "onnx/model_qint8_avx512_vnni.onnx"},
            )  # fmt: skip
        configurations["s-t onnx int8"] = lambda b: quantized.encode(texts, batch_size=b)
    except Exception as exc:  # optimum missing or an export failure: say so, keep the rest
        print(f"  (sentence-transformers ONNX configurations skipped: {str(exc)[:120]})")
    return {
        f"{name} @ {batch_size}": (lambda run=run, b=batch_size: run(b))
        for name, run in configurations.items()
        for batch_size in batch_sizes
    }


def time_encoders(texts: list[str], threads: int, batch_sizes: list[int], rounds: int) -> dict:
    """Best-of-rounds seconds for each sentence-transformers and odqa configuration at each
    batch size (keys ``"name @ batch"``)."""
    import torch

    from odqa import DEFAULT_DENSE_ENCODER, TextEncoder, inspect_encoder

    torch.set_num_threads(threads)
    spec = inspect_encoder(DEFAULT_DENSE_ENCODER)
    runners = peer_runners(texts, batch_sizes)
    for batch_size in batch_sizes:
        for name, (backend, precision) in ODQA_CONFIGS.items():
            encoder = TextEncoder(
                spec, backend=backend, device="cpu", batch_size=batch_size, threads=threads,
                precision=precision,
            )  # fmt: skip
            encoder.warm_up()
            runners[f"{name} @ {batch_size}"] = lambda e=encoder: e.encode(texts)
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
    from odqa import AnswerMatcher, first_hit_rank, top_k_accuracy

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


def squad_texts() -> list[str]:
    """The 2,067 SQuAD dev paragraphs as odqa's encoder sees them (``title. context``)."""
    articles = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    return [f"{a['title']}. {p['context']}" for a in articles for p in a["paragraphs"]]


def print_timing(timing: dict, count: int, args: argparse.Namespace) -> dict[str, float]:
    """The encoding table; returns each system's passages/s at its best batch size."""
    from odqa import has_native_bf16, resolve_precision

    seconds = timing["seconds"]
    first = args.batch_sizes[0]
    reference = timing["vectors"][f"odqa torch fp32 @ {first}"]
    speeds_at = {name: count / value for name, value in seconds.items()}
    print(
        f"\nencoding {count} passages, {args.threads} threads, batch sizes {args.batch_size}, "
        f"best of {args.rounds} rounds (--precision auto here: "
        f"{resolve_precision('auto', 'cpu')}; native bf16: {'yes' if has_native_bf16() else 'no'}):"
    )
    columns = "".join(f"{'batch ' + str(b):>11}" for b in args.batch_sizes)
    print(f"  {'system (passages/s)':<26}{columns}{'best':>9}{'min cos vs fp32':>17}")
    systems = list(dict.fromkeys(name.split(" @ ")[0] for name in seconds))
    speeds = {}
    for system in systems:
        row = [speeds_at[f"{system} @ {b}"] for b in args.batch_sizes]
        speeds[system] = max(row)
        vectors = timing["vectors"][f"{system} @ {first}"]
        cos = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1)
        cos /= np.linalg.norm(reference, axis=1)
        cells = "".join(f"{v:>11.1f}" for v in row)
        print(f"  {system:<26}{cells}{speeds[system]:>9.1f}{cos.min():>17.5f}")
    peer = max((n for n in speeds if n.startswith("s-t")), key=speeds.get)
    best = max((n for n in speeds if n.startswith("odqa")), key=speeds.get)
    torch_best = max((n for n in speeds if n.startswith("odqa torch")), key=speeds.get)
    print(
        f"  odqa's best ({best}, {speeds[best]:.1f}) vs sentence-transformers' best ({peer}, "
        f"{speeds[peer]:.1f}), each at its best batch size: {speeds[best] / speeds[peer]:.2f}x "
        f"(target >= 1.5); odqa torch's best ({torch_best}): "
        f"{speeds[torch_best] / speeds[peer]:.2f}x"
    )
    return speeds


def recall_section(args: argparse.Namespace, tmp: Path) -> dict[str, dict[int, float]]:
    """Build the SQuAD dev index (fp32) and measure recall for each retriever and precision."""
    from odqa import (
        BuildOptions,
        CorpusOptions,
        DenseOptions,
        DenseRetriever,
        HybridRetriever,
        build_dense,
        build_index,
        load_index,
    )

    questions = read_questions(args.questions)
    out = tmp / "squad"
    batch_size = args.batch_sizes[0]
    long_passages = args.long_passages
    dense = DenseOptions(device="cpu", batch_size=batch_size, precision="fp32",
                         long_passages=long_passages)
    options = BuildOptions(
        corpus=CorpusOptions(format="squad", passage_words=0),
        retrievers=("bm25", "dense"),
        dense=dense,
    )
    start = time.perf_counter()
    build_index([SQUAD], out, options)
    index = load_index(str(out))
    print(f"\ncorpus: {len(index.passages):,} SQuAD dev paragraphs; {len(questions):,} questions")
    print(f"index build (bm25 + dense, torch fp32, flat, long passages: {long_passages}): "
          f"{time.perf_counter() - start:.1f} s")
    print(f"answer recall (%), top-k:  {''.join(f'{k:>8}' for k in KS)}")
    results = {}
    results["bm25"] = recall(index, index.retriever("bm25"), questions, "bm25")
    results["dense"] = recall(index, index.retriever("dense"), questions, "dense")
    results["hybrid"] = recall(index, index.retriever("hybrid"), questions, "hybrid rrf")
    linear = index.retriever("hybrid", fusion="linear", alpha=0.5)
    results["linear"] = recall(index, linear, questions, "hybrid linear 0.5")
    for name, variant in (
        ("bf16", DenseOptions(batch_size=batch_size, precision="bf16",
                              long_passages=long_passages)),
        ("int8", DenseOptions(batch_size=batch_size, backend="int8", long_passages=long_passages)),
        ("openvino", DenseOptions(batch_size=batch_size, backend="openvino", precision="bf16",
                                  long_passages=long_passages)),
    ):
        folder = tmp / f"dense-{name}"
        folder.mkdir()
        start = time.perf_counter()
        section = build_dense(folder, index.passages, variant, False, None)
        print(f"  ({name} passage encoding of the corpus: {time.perf_counter() - start:.1f} s)")
        retriever = DenseRetriever.load(folder, section)
        results[f"dense-{name}"] = recall(index, retriever, questions, f"dense {name}")
        hybrid = HybridRetriever([index.retriever("bm25"), retriever], names=("bm25", "dense"))
        results[f"hybrid-{name}"] = recall(index, hybrid, questions, f"hybrid rrf {name}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=None, help="subsample (default: all)")
    parser.add_argument("--timing-passages", type=int, default=512, help="2067: all of them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", default="16,32,64", help="comma list, each timed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-recall", action="store_true", help="encoding speed only")
    parser.add_argument("--long-passages", choices=("windows", "truncate"), default="windows",
                        help="recall indexes: paragraphs past the encoder's limit (see odqa index)")
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_size.split(",")]

    import torch

    torch.set_num_threads(args.threads)
    texts = squad_texts()
    sample = random.Random(0).sample(texts, min(args.timing_passages, len(texts)))
    timing = time_encoders(sample, args.threads, args.batch_sizes, args.rounds)
    speeds = print_timing(timing, len(sample), args)
    if args.no_recall:
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = recall_section(args, Path(tmp))
    top20 = {name: 100 * scores[20] for name, scores in results.items()}
    baseline = speeds["s-t torch fp32"]
    print("\ntargets:")
    print(
        f"  hybrid top-20 above bm25 and dense: {top20['hybrid']:.1f} vs "
        f"{top20['bm25']:.1f} / {top20['dense']:.1f}"
    )
    for name, config in (("bf16", "odqa torch bf16"), ("int8", "odqa int8"),
                         ("openvino", "odqa openvino bf16")):
        print(
            f"  {name}: {speeds[config] / baseline:.2f}x s-t fp32, top-20 dense "
            f"{top20[f'dense-{name}'] - top20['dense']:+.2f} points (bf16: within 0.2 to stay "
            f"the --precision auto choice on native-bf16 CPUs)"
        )


if __name__ == "__main__":
    main()
