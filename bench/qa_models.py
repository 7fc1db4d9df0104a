"""odqa's own models on SQuAD v1.1 dev, measured through the CLI in one run.

1. The bundled reader on each question's gold paragraph (SQuAD's setting): EM / F1 and
   questions/s for torch fp32, torch bf16 autocast, ONNX Runtime int8 and OpenVINO (bf16 on
   CPUs that compute it natively).
2. SQuAD-open over the 2,067 dev paragraphs (kept whole): BM25 top-20 + the bundled reader
   against phrase retrieval (no reader) on the same questions and threads: EM@1, F1@1,
   questions/s and their ratios, and the wall-clock questions/s of `odqa ask --questions`
   for both (process start included).
3. Dense retrieval top-1/5/20/100 with a given encoder (e.g. one from `odqa train dense`)
   beside the packaged all-MiniLM-L6-v2 and BM25, and hybrid with each.

    python bench/qa_models.py [--questions 1000] [--phrase-encoder DIR] [--dense-encoder DIR]
        [--threads 2] [--out bench/out/qa_models.json]

Every figure is one `odqa eval ... --format json` run; the JSON reports are kept in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEV = DATA / "squad-v1.1" / "dev-v1.1.json"
OPEN = DATA / "squad-open" / "topics.dpr.squad.test.txt"
ODQA = [str(Path(sys.executable).parent / "odqa")]


def timed_ask(questions: Path, *args: str) -> dict:
    """Wall time of one `odqa ask --questions FILE ARGS` process (answers to a file)."""
    import time

    out = questions.with_suffix(".answers.jsonl")
    cmd = [*ODQA, "ask", "--questions", str(questions), *args, "--format", "jsonl",
           "--output", str(out)]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    count = sum(1 for _ in questions.open(encoding="utf-8"))
    return {"questions": count, "seconds": round(seconds, 2),
            "questions_per_s": round(count / seconds, 3)}


def first_questions(n: int, folder: Path) -> Path:
    """The first ``n`` SQuAD-open questions as a JSON lines file."""
    path = folder / f"questions-{n}.jsonl"
    with OPEN.open(encoding="utf-8") as source, path.open("w", encoding="utf-8") as out:
        for number, line in enumerate(source):
            if number == n:
                break
            out.write(json.dumps({"id": str(number), "question": line.split("\t")[0]}) + "\n")
    return path


def odqa(*args: str) -> dict:
    """Run `odqa ARGS --format json`, return the report."""
    cmd = [*ODQA, *args, "--format", "json", "--quiet"]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def build(index: Path, retrievers: str, *extra: str) -> None:
    cmd = [*ODQA, "index", str(DEV), "--out", str(index), "--passage-words", "0",
           "--retrievers", retrievers, "--force", "-q", *extra]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def system(report: dict, name: str | None = None) -> dict:
    systems = report["systems"]
    return next(s for s in systems if name is None or s["name"] == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--reading-questions", type=int, default=None,
                        help="gold-paragraph questions (default: all 10,570 for fp32)")
    parser.add_argument("--phrase-encoder", default="odqa/phrase-minilm",
                        help="phrase model (default: the bundled one); --skip phrase drops it")
    parser.add_argument("--dense-encoder", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ask-questions", type=int, default=200,
                        help="questions answered by `odqa ask --questions` for the q/s ratio")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: "
                        "reading,open,phrase,dense")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "qa_models.json")
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
    skip = set(args.skip.split(","))
    if "phrase" in skip:
        args.phrase_encoder = None
    results: dict = {"questions": args.questions, "threads": args.threads}
    n = str(args.questions)
    if "reading" not in skip:
        runs = {"fp32 (default backend)": ("--precision", "fp32"),
                "torch bf16": ("--precision", "bf16"), "onnx int8": ("--backend", "int8"),
                "openvino": ("--backend", "openvino")}
        results["reading"] = {}
        for label, flags in runs.items():
            limit = args.reading_questions if label.startswith("fp32") else args.questions
            extra = ("--limit", str(limit)) if limit else ()
            report = odqa("eval", str(DEV), "--mode", "reading", *flags, *extra)
            results["reading"][label] = report
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "squad-dev"
        if "open" not in skip:
            families = "bm25,phrase" if args.phrase_encoder else "bm25"
            extra = ("--phrase-encoder", args.phrase_encoder) if args.phrase_encoder else ()
            build(index, families, *extra)
            results["open_book"] = odqa("eval", str(OPEN), "--index", str(index), "--mode",
                                        "open-book", "--retriever", "bm25", "--passages", "20",
                                        "--score", "reader", "--limit", n,
                                        "--latency-sample", "0")
            results["open_book_combined"] = odqa(
                "eval", str(OPEN), "--index", str(index), "--mode", "open-book", "--retriever",
                "bm25", "--passages", "20", "--score", "combined", "--limit", n,
                "--latency-sample", "0")
            if args.phrase_encoder:
                results["phrase"] = odqa("eval", str(OPEN), "--index", str(index), "--mode",
                                         "phrase", "--limit", n, "--latency-sample", "0")
                results["phrase_dense"] = odqa(
                    "eval", str(OPEN), "--index", str(index), "--mode", "phrase",
                    "--phrase-sparse-weight", "0", "--limit", n, "--latency-sample", "0")
                results["phrase_retrieval"] = odqa(
                    "eval", str(OPEN), "--index", str(index), "--retriever", "phrase",
                    "--k", "1,5,20,100", "--limit", n, "--latency-sample", "0")
                asked = first_questions(args.ask_questions, Path(tmp))
                results["ask"] = {
                    "pipeline": timed_ask(asked, "--index", str(index), "--passages", "20"),
                    "phrase": timed_ask(asked, "--index", str(index), "--mode", "phrase"),
                    "phrase_dense": timed_ask(asked, "--index", str(index), "--mode", "phrase",
                                              "--phrase-sparse-weight", "0"),
                }
                manifest = json.loads((index / "manifest.json").read_text())
                results["phrase_index"] = {
                    k: manifest["phrase"][k] for k in ("tokens", "corpus_tokens", "kept_share")}
                results["phrase_index"]["bytes"] = sum(
                    f.stat().st_size for f in (index / "phrase").rglob("*") if f.is_file())
        if "dense" not in skip:
            results["dense"] = {}
            encoders = {"all-MiniLM-L6-v2": None}
            if args.dense_encoder:
                encoders["tuned"] = args.dense_encoder
            for label, encoder in encoders.items():
                extra = ("--encoder", encoder) if encoder else ()
                build(index, "bm25,dense", *extra)
                results["dense"][label] = odqa(
                    "eval", str(OPEN), "--index", str(index), "--retriever",
                    "bm25,dense,hybrid", "--k", "1,5,20,100", "--latency-sample", "0")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_summary(results)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def print_summary(results: dict) -> None:
    for label, report in results.get("reading", {}).items():
        s = system(report)
        print(f"reading {label:11s} n={report['questions']:>6,}  EM {_pct(s['metrics']['em'])}"
              f"  F1 {_pct(s['metrics']['f1'])}  {s['latency']['questions_per_s']:.1f} q/s")
    if "open_book" in results:
        ob = system(results["open_book"])
        print(f"bm25@20 + reader, --score reader EM@1 {_pct(ob['metrics'].get('em'))}  "
              f"F1@1 {_pct(ob['metrics'].get('f1'))}  {ob['latency']['questions_per_s']:.2f} q/s")
        if "open_book_combined" in results:
            oc = system(results["open_book_combined"])
            print(f"  same, --score combined    EM@1 {_pct(oc['metrics'].get('em'))}  "
                  f"F1@1 {_pct(oc['metrics'].get('f1'))}")
        labels = {"phrase": "phrase, dense + BM25", "phrase_dense": "phrase, dense only"}
        for key, label in labels.items():
            if key not in results:
                continue
            ph = system(results[key])
            em_ratio = ph["metrics"]["em"] / max(1e-9, ob["metrics"]["em"])
            print(f"{label:27s} EM@1 {_pct(ph['metrics'].get('em'))}  "
                  f"F1@1 {_pct(ph['metrics'].get('f1'))}  "
                  f"{ph['latency']['questions_per_s']:.2f} q/s  EM@1 {em_ratio:.2f}x pipeline")
            if key in results.get("ask", {}):
                pipe, phr = results["ask"]["pipeline"], results["ask"][key]
                print(f"  odqa ask --questions ({pipe['questions']}): pipeline "
                      f"{pipe['questions_per_s']:.2f} q/s, {label} {phr['questions_per_s']:.2f} "
                      f"q/s: {phr['questions_per_s'] / pipe['questions_per_s']:.1f}x")
        if "phrase_index" in results:
            print("phrase index:", results["phrase_index"])
    for label, report in results.get("dense", {}).items():
        for s in report["systems"]:
            m = s["metrics"]
            print(f"{label:17s} {s['name']:7s} " + "  ".join(
                f"top-{k} {_pct(m.get(f'top{k}', m.get(f'top-{k}')))}" for k in (1, 5, 20, 100)))


if __name__ == "__main__":
    main()
