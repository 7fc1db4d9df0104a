"""Reader throughput: odqa's extractive reader against a pipeline-style per-pair reader.

The baseline does what transformers' question-answering pipeline did (the pipeline itself is gone
from transformers 5): one question/passage pair at a time, its own windows (384 tokens, stride
128), one forward per pair, softmax start/end probabilities, band-limited outer product, top-k.
odqa reads all windows of all questions in shared length-sorted batches; it is timed with each
runtime: torch fp32 (same numerics as the baseline), ONNX Runtime fp32, torch bf16 autocast and
ONNX Runtime int8. All read the same pairs with the same randomly initialised 6-layer, 384-wide
BERT (the all-MiniLM-L6-v2 shape and tokenizer: cost is what matters) on the same threads.

Pairs: a random subsample of SQuAD v1.1 dev questions (``--questions``, 8 by default, to keep the
run to a few minutes) with their 20 BM25-retrieved passages from an index of the 2,067 dev
paragraphs (kept whole). Reported per reader: best wall and CPU seconds over ``--repeats`` runs,
pairs/s, ratio to the baseline, and how many pairs get the same best span as the baseline. Then
the model cost alone: a plain transformers forward of the same windows under bf16 autocast, in
batches of ``--batch-size`` in input order and sorted by length, no span decoding, against
odqa's bf16 reader, in windows/s. Also reported: warm, in-process open-book answering latency
per question (torch fp32 reader), split into retrieval and reading.

    python bench/reader.py [--questions 8] [--passages 20] [--threads N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


VARIANTS = {
    "torch-fp32": ("torch", "fp32"),
    "onnx-fp32": ("onnx", "fp32"),
    "torch-bf16": ("torch", "bf16"),
    "onnx-int8": ("int8", "fp32"),
    "openvino-bf16": ("openvino", "bf16"),
}


def squad_records(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """SQuAD dev as corpus records (one per paragraph) and (id, question) pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    records, questions = [], []
    for article in data:
        for p, paragraph in enumerate(article["paragraphs"]):
            pid = f"{article['title']}-{p}"
            records.append({"id": pid, "title": article["title"], "text": paragraph["context"]})
            questions += [(qa["id"], qa["question"]) for qa in paragraph["qas"]]
    return records, questions


def save_random_reader(folder: Path) -> str:
    """A randomly initialised BertForQuestionAnswering of MiniLM-L6's shape, with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForQuestionAnswering

    from odqa import DEFAULT_DENSE_ENCODER, resolve_model

    source = resolve_model(DEFAULT_DENSE_ENCODER)
    config = AutoConfig.from_pretrained(source)
    config.architectures = ["BertForQuestionAnswering"]
    torch.manual_seed(0)
    BertForQuestionAnswering(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return str(folder)


def pipeline_style_read(model, tokenizer, question: str, context: str, top_k: int = 1):
    """One pair the way the question-answering pipeline read it; best spans (score, start, end)."""
    import torch

    enc = tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=384,
        stride=128,
        padding="longest",
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    names = [n for n in tokenizer.model_input_names if n in enc]
    with torch.inference_mode():
        out = model(**{n: enc[n] for n in names})
    answers = []
    for w in range(enc["input_ids"].shape[0]):
        seq = enc.sequence_ids(w)
        undesired = np.array([s != 1 for s in seq])
        start = out.start_logits[w].numpy().copy()
        end = out.end_logits[w].numpy().copy()
        start[undesired], end[undesired] = -10000.0, -10000.0
        start = np.exp(start - start.max()) / np.exp(start - start.max()).sum()
        end = np.exp(end - end.max()) / np.exp(end - end.max()).sum()
        outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 0))
        candidates = np.tril(np.triu(outer), 30 - 1)  # max_answer_len as odqa's default
        flat = candidates.flatten()
        best = np.argpartition(-flat, top_k)[:top_k] if top_k < len(flat) else np.argsort(-flat)
        offsets = enc["offset_mapping"][w].tolist()
        for idx in best:
            s, e = np.unravel_index(idx, candidates.shape)
            if undesired[s] or undesired[e]:
                continue
            answers.append((float(flat[idx]), offsets[s][0], offsets[e][1]))
    return sorted(answers, reverse=True)[:top_k]


def run_baseline(model, tokenizer, questions, contexts) -> list:
    return [
        pipeline_style_read(model, tokenizer, q, c)
        for q, texts in zip(questions, contexts)
        for c in texts
    ]


def plain_bf16_forward(
    model, tokenizer, questions, contexts, batch_size: int, by_length: bool = False
) -> int:
    """Every window of every pair through the model under bf16 autocast, in batches of
    ``batch_size`` (in input order, or sorted by length), padded to each batch's longest;
    returns the window count."""
    import torch

    ids, types = [], []
    for q, texts in zip(questions, contexts):
        for c in texts:
            enc = tokenizer(q, c, truncation="only_second", max_length=384, stride=128,
                            return_overflowing_tokens=True, return_token_type_ids=True)
            ids += enc["input_ids"]
            types += enc["token_type_ids"]
    if by_length:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        ids, types = [ids[i] for i in order], [types[i] for i in order]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for begin in range(0, len(ids), batch_size):
            batch = tokenizer.pad({"input_ids": ids[begin : begin + batch_size],
                                   "token_type_ids": types[begin : begin + batch_size]},
                                  return_tensors="pt")
            model(**batch)
    return len(ids)


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock and CPU seconds over ``repeats`` runs, and the last result."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu, result


def same_best_spans(baseline: list, read: list) -> int:
    """Pairs whose best span is the same character span for both readers."""
    flat = [spans for per_question in read for spans in per_question]
    return sum(
        bool(b) and len(o.starts) > 0 and (b[0][1], b[0][2]) == (o.starts[0], o.ends[0])
        for b, o in zip(baseline, flat)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8, help="SQuAD dev questions sampled")
    parser.add_argument("--passages", type=int, default=20, help="passages read per question")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (both sides)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs; the best is kept")
    parser.add_argument("--batch-size", type=int, default=32, help="odqa windows per batch")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="odqa variants to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from odqa import (
        BuildOptions,
        CorpusOptions,
        ExtractiveReader,
        Query,
        ReaderParams,
        build_index,
        load_index,
        load_qa_model,
        read_hits,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    records, all_questions = squad_records(DATA / "squad-v1.1" / "dev-v1.1.json")
    sample = random.Random(args.seed).sample(all_questions, args.questions)
    queries = [Query(qid, text) for qid, text in sample]

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ODQA_CACHE"] = tmp  # ONNX exports go to the temporary folder
        corpus = Path(tmp) / "squad-dev.jsonl"
        corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        options = BuildOptions(corpus=CorpusOptions(passage_words=0))
        build_index([corpus], Path(tmp) / "index", options)
        index = load_index(str(Path(tmp) / "index"))
        reader_path = save_random_reader(Path(tmp) / "reader")

        hits = index.search([q.text for q in queries], args.passages)
        texts = [[h.text for h in hs] for hs in hits]
        questions = [q.text for q in queries]
        n_pairs = sum(len(t) for t in texts)
        model, tokenizer = load_qa_model(reader_path, "cpu")
        run_baseline(model, tokenizer, questions[:1], [texts[0][:4]])  # warm-up
        base = timed(lambda: run_baseline(model, tokenizer, questions, texts), args.repeats)
        rows = [("baseline: per pair, pipeline-style (fp32)", base, n_pairs)]
        for variant in args.variants.split(","):
            backend, precision = VARIANTS[variant]
            params = ReaderParams(
                batch_size=args.batch_size, device="cpu", precision=precision, backend=backend
            )
            reader = ExtractiveReader(reader_path, params)
            reader.read(questions[:1], [texts[0][:4]])  # warm-up (and ONNX export)
            result = timed(lambda r=reader: r.read(questions, texts), args.repeats)
            rows.append(
                (
                    f"odqa: batches of {args.batch_size}, {variant}",
                    result,
                    same_best_spans(base[2], result[2]),
                )
            )
        windows = sum(
            len(
                tokenizer(
                    q,
                    t,
                    truncation="only_second",
                    max_length=384,
                    stride=128,
                    return_overflowing_tokens=True,
                )["input_ids"]
            )
            for q, ts in zip(questions, texts)
            for t in ts
        )
        plain_bf16_forward(model, tokenizer, questions[:1], [texts[0][:4]], args.batch_size)
        plain = timed(lambda: plain_bf16_forward(model, tokenizer, questions, texts,
                                                 args.batch_size), args.repeats)
        plain_sorted = timed(lambda: plain_bf16_forward(model, tokenizer, questions, texts,
                                                        args.batch_size, True), args.repeats)
        bf16_reader = ExtractiveReader(reader_path, ReaderParams(
            batch_size=args.batch_size, device="cpu", precision="bf16", backend="torch"))
        bf16_reader.read(questions[:1], [texts[0][:4]])
        odqa_bf16 = timed(lambda: bf16_reader.read(questions, texts), args.repeats)
        ov_reader = ExtractiveReader(reader_path, ReaderParams(
            batch_size=args.batch_size, device="cpu", precision="bf16", backend="openvino"))
        ov_reader.read(questions[:1], [texts[0][:4]])
        odqa_ov = timed(lambda: ov_reader.read(questions, texts), args.repeats)
        read_hits(index, queries[:1], hits[:1], reader=reader_path, device="cpu")  # warm-up

        retrieval, reading = [], []
        for q in queries:  # warm, in process, one question at a time
            started = time.perf_counter()
            found = index.search([q.text], args.passages)
            middle = time.perf_counter()
            read_hits(index, [q], found, reader=reader_path, device="cpu")
            retrieval.append(middle - started)
            reading.append(time.perf_counter() - middle)

    print(
        f"pairs: {n_pairs} ({args.questions} SQuAD dev questions x {args.passages} BM25 "
        f"passages, {windows} windows of <= 384 tokens), torch threads: {threads}, "
        f"best of {args.repeats} runs"
    )
    print(
        f"{'reader':48s} {'wall s':>7s} {'pairs/s':>8s} {'x':>6s} {'cpu s':>7s} {'x cpu':>6s}"
        f" {'same best span':>15s}"
    )
    for name, (wall, cpu, _), same in rows:
        print(
            f"{name:48s} {wall:7.2f} {n_pairs / wall:8.2f} {base[0] / wall:6.2f} {cpu:7.2f} "
            f"{base[1] / cpu:6.2f} {same:>9d}/{n_pairs}"
        )
    print(
        f"model cost alone, {windows} windows: plain transformers bf16 forward, batches of "
        f"{args.batch_size} in input order {windows / plain[0]:.1f} windows/s, sorted by length "
        f"{windows / plain_sorted[0]:.1f}; odqa reader bf16 (forward + span decoding) "
        f"{windows / odqa_bf16[0]:.1f} windows/s: {plain[0] / odqa_bf16[0]:.2f}x / "
        f"{plain_sorted[0] / odqa_bf16[0]:.2f}x; odqa reader on OpenVINO bf16 "
        f"{windows / odqa_ov[0]:.1f} windows/s: {plain[0] / odqa_ov[0]:.2f}x / "
        f"{plain_sorted[0] / odqa_ov[0]:.2f}x"
    )
    print(
        f"ask latency per question (warm, {args.passages} passages): "
        f"retrieval {1000 * statistics.mean(retrieval):.1f} ms, "
        f"reading {1000 * statistics.mean(reading):.1f} ms, "
        f"total {1000 * (statistics.mean(retrieval) + statistics.mean(reading)):.1f} ms"
    )


if __name__ == "__main__":
    main()
