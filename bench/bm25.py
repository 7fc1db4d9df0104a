"""BM25 benchmark: odqa against bm25s (numpy, numba), Pyserini, PISA, tantivy and rank-bm25.

One command prints, per corpus (SQuAD dev paragraphs, then synthetic corpora of ``--passages``
sizes): build time, index size, peak memory, queries/s at 1 and at 2 threads, odqa's ratio to
each peer, and each peer's top-100 agreement with odqa; then rank-bm25's top-100 agreement with
odqa's okapi variant. Every system builds and searches in its own fresh process, from the same
JSON lines file (passages whole, ``title\\ntext`` indexed), k1 = 0.9, b = 0.4, k = 100.

Tokens: odqa's analysis (lowercase, ``\\w+`` words, Lucene's 33 English stopwords, Snowball
English stemmer) is given to bm25s, tantivy (the same analysis as a tantivy text analyzer) and
Pyserini (odqa's tokens, pre-tokenised, Lucene whitespace analysis); PISA runs its own analysis
configured the same way (Lucene stopwords, porter2 = Snowball English). Query analysis is timed
with every system.

usage: python bench/bm25.py [--passages 100000,1000000] [--queries 3000] [--systems ...]
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
SQUAD = SHARED / "data" / "squad-v1.1" / "dev-v1.1.json"
QUESTIONS = SHARED / "data" / "squad-open" / "topics.dpr.squad.test.txt"
MAKE_SYNTHETIC = SHARED / "tools" / "make_synthetic_corpus.py"
K = 100
THREADS = (1, 2)
REPEAT_SECONDS = 5.0
RANK_BM25_QUERIES = 20
JDK_ROOTS = (Path("/usr/lib/jvm"), Path("/opt"))
FIXED_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# ----------------------------------------------------------------------------- worker side


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON lines corpus, streamed."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def indexed_text(record: dict[str, Any]) -> str:
    """What odqa indexes for a passage: title, newline, text (see odqa.index.build.bm25_text)."""
    title = record.get("title") or ""
    return f"{title}\n{record['text']}" if title else record["text"]


def peak_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def best_qps(search: Callable[[list[str]], Any], queries: list[str]) -> tuple[float, Any]:
    """Best queries/s of ``search(queries)`` over up to 3 runs (fewer past REPEAT_SECONDS)."""
    search(queries[:20])
    best, result, spent = 0.0, None, 0.0
    for _ in range(3):
        started = time.perf_counter()
        result = search(queries)
        elapsed = time.perf_counter() - started
        best, spent = max(best, len(queries) / elapsed), spent + elapsed
        if spent > REPEAT_SECONDS:
            break
    return best, result


def ranked_ids(rows: list[Any]) -> np.ndarray:
    """Per-query passage indices as an (n, K) array padded with -1."""
    out = np.full((len(rows), K), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        row = np.asarray(row, dtype=np.int64)[:K]
        out[i, : len(row)] = row
    return out


def odqa_analyzer():
    from odqa import Analyzer

    return Analyzer()


def run_odqa(corpus: Path, queries: list[str], work: Path, strategy: str) -> dict[str, Any]:
    from odqa import BuildOptions, CorpusOptions, build_index, load_index

    out = work / "index"
    started = time.perf_counter()
    options = BuildOptions(corpus=CorpusOptions(passage_words=0), retrievers=("bm25",))
    build_index([corpus], out, options, force=True)
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started}
    figures["index_mb"], figures["build_peak_mb"] = folder_mb(out), peak_mb()
    index = load_index(out)
    found = None
    for threads in THREADS:
        retriever = index.retriever("bm25", threads=threads, strategy=strategy)
        qps, ranked = best_qps(lambda batch, r=retriever: r.search_ids(batch, K), queries)
        figures[f"qps_{threads}"] = qps
        found = found if found is not None else [ids for ids, _ in ranked]
    figures["ids"] = ranked_ids(found)
    hits_qps, _ = best_qps(lambda b: index.search(b, K, "bm25", threads=1, strategy=strategy),
                           queries)
    figures["hits_qps_1"] = hits_qps
    figures["cli_s"] = cli_latency(out, queries[0], strategy)
    figures["config"] = f"strategy={strategy}; index.search (hits) 1 thread: {hits_qps:,.0f} q/s"
    return figures


def cli_latency(index: Path, query: str, strategy: str) -> float:
    """Median wall time of ``odqa search "q" --index I --format trec`` in a new process."""
    if strategy != "exhaustive":
        return float("nan")
    odqa = Path(sys.executable).parent / "odqa"
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(odqa), "search", query, "--index", str(index), "--format", "trec"],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def run_bm25s(corpus: Path, queries: list[str], work: Path, backend: str) -> dict[str, Any]:
    import bm25s
    import Stemmer

    from odqa import ENGLISH_STOPWORDS, WORD_RE

    stemmer, stopwords = Stemmer.Stemmer("english"), sorted(ENGLISH_STOPWORDS)
    out = work / "index"
    started = time.perf_counter()
    tokens = bm25s.tokenize(
        (indexed_text(r) for r in read_records(corpus)), token_pattern=WORD_RE.pattern,
        stopwords=stopwords, stemmer=stemmer, show_progress=False,
    )
    model = bm25s.BM25(k1=0.9, b=0.4, method="lucene", backend=backend)
    model.index(tokens, show_progress=False)
    del tokens
    model.save(str(out), corpus=read_records(corpus), show_progress=False)
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started}
    figures["index_mb"], figures["build_peak_mb"] = folder_mb(out), peak_mb()
    del model
    model = bm25s.BM25.load(str(out))
    found = None
    for threads in THREADS:
        def search(batch: list[str], n_threads: int = threads) -> Any:
            query_tokens = bm25s.tokenize(
                batch, token_pattern=WORD_RE.pattern, stopwords=stopwords, stemmer=stemmer,
                return_ids=False, show_progress=False,
            )
            return model.retrieve(query_tokens, k=K, n_threads=n_threads, show_progress=False,
                                  backend_selection=backend)

        figures[f"qps_{threads}"], result = best_qps(search, queries)
        found = found if found is not None else result.documents
    figures["ids"] = ranked_ids(list(found))
    figures["config"] = f"backend={backend}, method=lucene, bm25s {bm25s.__version__}"
    return figures


def find_jdk(minimum: int = 21) -> Path | None:
    """A JDK folder (with bin/javac) of version >= ``minimum`` under /usr/lib/jvm or /opt."""
    for root in JDK_ROOTS:
        for home in sorted(root.glob("*"), reverse=True) if root.is_dir() else []:
            release = home / "release"
            if not (home / "bin" / "javac").exists() or not release.is_file():
                continue
            for line in release.read_text().splitlines():
                if line.startswith("JAVA_VERSION="):
                    major = line.split("=", 1)[1].strip('"').split(".")[0]
                    if major.isdigit() and int(major) >= minimum:
                        return home
    return None


def run_pyserini(corpus: Path, queries: list[str], work: Path, _: str) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "none")
    analyzer = odqa_analyzer()
    started = time.perf_counter()
    docs = work / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    with open(docs / "docs.jsonl", "w", encoding="utf-8") as handle:
        for i, record in enumerate(read_records(corpus)):
            contents = " ".join(analyzer.tokenize(indexed_text(record)))
            handle.write(json.dumps({"id": str(i), "contents": contents}) + "\n")
    out = work / "index"
    command = [
        sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection",
        "--input", str(docs), "--index", str(out), "--generator",
        "DefaultLuceneDocumentGenerator", "--threads", "1", "--pretokenized",
    ]
    subprocess.run(command, check=True, capture_output=True)
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started}
    shutil.rmtree(docs)
    figures["index_mb"], figures["build_peak_mb"] = folder_mb(out), peak_mb()
    from pyserini.pyclass import autoclass  # the JVM with Pyserini's class path
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(out))
    searcher.set_bm25(0.9, 0.4)
    searcher.set_analyzer(autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")())
    qids = [str(i) for i in range(len(queries))]
    found = None
    for threads in THREADS:
        def search(batch: list[str], n: int = threads) -> Any:
            texts = [" ".join(analyzer.tokenize(q)) for q in batch]
            return searcher.batch_search(texts, qids[: len(batch)], k=K, threads=n)

        figures[f"qps_{threads}"], result = best_qps(search, queries)
        if found is None:
            found = [[int(h.docid) for h in result[q]] for q in qids]
    figures["ids"] = ranked_ids(found)
    figures["config"] = "LuceneSearcher.batch_search, pre-tokenised, WhitespaceAnalyzer"
    return figures


def run_pisa(corpus: Path, queries: list[str], work: Path, _: str) -> dict[str, Any]:
    import pandas as pd
    from pyterrier_pisa import PisaIndex, PisaStopwords

    out = work / "index"
    started = time.perf_counter()
    index = PisaIndex(str(out), stemmer="porter2", stops=PisaStopwords.lucene, threads=1)
    index.index({"docno": str(i), "text": indexed_text(r)}
                for i, r in enumerate(read_records(corpus)))
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started}
    figures["index_mb"], figures["build_peak_mb"] = folder_mb(out), peak_mb()
    frame = pd.DataFrame({"qid": [str(i) for i in range(len(queries))], "query": queries})
    found = None
    for threads in THREADS:
        retriever = index.bm25(k1=0.9, b=0.4, num_results=K, threads=threads)
        figures[f"qps_{threads}"], result = best_qps(
            lambda batch, r=retriever: r.transform(frame.iloc[: len(batch)]), queries
        )
        if found is None:
            ranked = result.sort_values(["qid", "rank"])
            by_qid = {q: g["docno"].astype(int).tolist() for q, g in ranked.groupby("qid")}
            found = [by_qid.get(str(i), []) for i in range(len(queries))]
    figures["ids"] = ranked_ids(found)
    figures["config"] = "block_max_wand (default), stemmer porter2, stops=lucene"
    return figures


def run_tantivy(corpus: Path, queries: list[str], work: Path, _: str) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import tantivy

    from odqa import ENGLISH_STOPWORDS

    analyzer = odqa_analyzer()
    started = time.perf_counter()
    text_analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(r"\w+"))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.custom_stopword(sorted(ENGLISH_STOPWORDS)))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("text", tokenizer_name="odqa")
    builder.add_unsigned_field("doc", stored=True)
    schema = builder.build()
    out = work / "index"
    out.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(schema, path=str(out))
    index.register_tokenizer("odqa", text_analyzer)
    writer = index.writer(heap_size=500_000_000, num_threads=1)
    for i, record in enumerate(read_records(corpus)):
        writer.add_document(tantivy.Document(text=indexed_text(record), doc=i))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started}
    figures["index_mb"], figures["build_peak_mb"] = folder_mb(out), peak_mb()
    searcher = index.searcher()

    def one(query: str) -> list[int]:
        terms = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", t))
                 for t in dict.fromkeys(analyzer.tokenize(query))]
        if not terms:
            return []
        result = searcher.search(tantivy.Query.boolean_query(terms), K)
        return [searcher.doc(address)["doc"][0] for _, address in result.hits]

    found = None
    for threads in THREADS:
        with ThreadPoolExecutor(threads) as pool:
            figures[f"qps_{threads}"], result = best_qps(
                lambda b, p=pool: list(p.map(one, b)), queries
            )
        found = found if found is not None else result
    figures["ids"] = ranked_ids(found)
    figures["config"] = "k1=1.2, b=0.75 (fixed in tantivy), same analysis; 2 threads: a pool"
    return figures


def run_rank_bm25(corpus: Path, queries: list[str], work: Path, _: str) -> dict[str, Any]:
    """rank-bm25 BM25Okapi against odqa's okapi variant on a few queries: top-100 agreement
    and rank-bm25's queries/s (it scores every passage in Python)."""
    from rank_bm25 import BM25Okapi

    from odqa import BM25Params, BuildOptions, CorpusOptions, build_index, load_index

    analyzer = odqa_analyzer()
    params = BM25Params(variant="okapi", k1=0.9, b=0.4)
    options = BuildOptions(corpus=CorpusOptions(passage_words=0), retrievers=("bm25",), bm25=params)
    build_index([corpus], work / "index", options, force=True)
    retriever = load_index(work / "index").retriever("bm25", threads=1)
    started = time.perf_counter()
    model = BM25Okapi([analyzer.tokenize(indexed_text(r)) for r in read_records(corpus)],
                      k1=0.9, b=0.4)
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started, "index_mb": float("nan")}
    figures["build_peak_mb"] = peak_mb()
    sample = queries[:RANK_BM25_QUERIES]
    started = time.perf_counter()
    expected = []
    for query in sample:
        scores = model.get_scores(analyzer.tokenize(query))
        touched = np.flatnonzero(scores != 0)
        expected.append(touched[np.lexsort((touched, -scores[touched]))][:K])
    figures["qps_1"] = len(sample) / (time.perf_counter() - started)
    ours = retriever.search_ids(sample, K)
    figures["okapi_agreement"] = agreement(ranked_ids([i for i, _ in ours]), ranked_ids(expected))
    figures["config"] = f"BM25Okapi in memory; agreement over {len(sample)} queries"
    return figures


RUNNERS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {
    "odqa": (run_odqa, "exhaustive"),
    "odqa-maxscore": (run_odqa, "maxscore"),
    "bm25s-numpy": (run_bm25s, "numpy"),
    "bm25s-numba": (run_bm25s, "numba"),
    "pyserini": (run_pyserini, ""),
    "pisa": (run_pisa, ""),
    "tantivy": (run_tantivy, ""),
    "rank-bm25": (run_rank_bm25, ""),
}


def worker(args: argparse.Namespace) -> None:
    """Run one system on one corpus; write its figures to ``args.result``."""
    work = Path(args.work)
    queries = Path(args.query_file).read_text(encoding="utf-8").splitlines()
    run, option = RUNNERS[args.worker]
    figures = run(Path(args.corpus), queries, work, option)
    if "ids" in figures:
        np.save(work / "ids.npy", figures.pop("ids"), allow_pickle=False)
    figures["peak_mb"] = peak_mb()
    Path(args.result).write_text(json.dumps(figures))


# ----------------------------------------------------------------------------- driver side


def write_squad_corpus(path: Path) -> int:
    """The 2,067 SQuAD dev paragraphs as JSON lines; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for article in json.loads(SQUAD.read_text(encoding="utf-8"))["data"]:
            title = article["title"]
            for i, paragraph in enumerate(article["paragraphs"]):
                record = {"id": f"{title}#{i}", "title": title.replace("_", " "),
                          "text": paragraph["context"]}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def sample_questions(n: int, seed: int = 0) -> list[str]:
    with open(QUESTIONS, encoding="utf-8") as handle:
        questions = [json.loads(line)["question"].replace("\n", " ") for line in handle]
    return questions if n >= len(questions) else random.Random(seed).sample(questions, n)


def run_system(system: str, corpus: Path, questions: list[str], work: Path) -> dict[str, Any]:
    """Run ``system`` in a fresh subprocess; its figures (or the error, on failure)."""
    folder = work / system
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    query_file, result = folder / "queries.txt", folder / "result.json"
    query_file.write_text("\n".join(questions) + "\n", encoding="utf-8")
    env = {**os.environ, **dict.fromkeys(FIXED_THREADS, "1"), "OPENAI_API_KEY": "none"}
    env["NUMBA_NUM_THREADS"] = str(max(THREADS))
    jdk = find_jdk()
    if jdk is not None:
        env["JAVA_HOME"] = str(jdk)
    command = [sys.executable, __file__, "--worker", system, "--corpus", str(corpus),
               "--query-file", str(query_file), "--work", str(folder), "--result", str(result)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1][:160] if lines else f"exit {done.returncode}"}
    figures = json.loads(result.read_text())
    if (folder / "ids.npy").exists():
        figures["ids"] = np.load(folder / "ids.npy")
    shutil.rmtree(folder / "index", ignore_errors=True)
    return figures


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of common passages in two systems' top-K lists."""
    shares = []
    for x, y in zip(a, b):
        x, y = set(x[x >= 0].tolist()), set(y[y >= 0].tolist())
        shares.append(len(x & y) / max(len(x | y), 1) if x or y else 1.0)
    return float(np.mean(shares))


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return format(value, spec)


def report(name: str, passages: int, results: dict[str, dict[str, Any]]) -> None:
    """Print one corpus's table: figures, odqa's ratios and agreement with odqa."""
    base = results.get("odqa", {})
    print(f"\n== {name}: {passages:,} passages, {K} hits/query ==")
    print(f"{'system':<14} {'build s':>8} {'index MiB':>10} {'peak MiB':>9} {'q/s 1t':>9} "
          f"{'q/s 2t':>9} {'odqa÷ 1t':>9} {'odqa÷ 2t':>9} {'top-100 = odqa':>15}")
    for system, r in results.items():
        if "error" in r:
            print(f"{system:<14} failed: {r['error']}")
            continue
        ratios = [base.get(f"qps_{t}", np.nan) / r[f"qps_{t}"] if f"qps_{t}" in r else np.nan
                  for t in THREADS]
        same = agreement(r["ids"], base["ids"]) if "ids" in r and "ids" in base else np.nan
        print(f"{system:<14} {r['build_s']:>8.1f} {fmt(r['index_mb'], '>10,.1f'):>10} "
              f"{r['peak_mb']:>9,.0f} {fmt(r.get('qps_1'), '>9,.0f'):>9} "
              f"{fmt(r.get('qps_2'), '>9,.0f'):>9} {fmt(ratios[0], '>9.2f'):>9} "
              f"{fmt(ratios[1], '>9.2f'):>9} {fmt(same, '>15.2%'):>15}")
    for system, r in results.items():
        if "config" in r:
            print(f"  {system}: {r['config']}")
    if "cli_s" in base:
        print(f"  odqa one-query CLI (new process, --format trec): {base['cli_s']:.2f} s")
    if "okapi_agreement" in results.get("rank-bm25", {}):
        share = results["rank-bm25"]["okapi_agreement"]
        print(f"  rank-bm25 BM25Okapi vs odqa okapi, top-{K}: {share:.2%} common passages")


def bench_corpus(name: str, corpus: Path, passages: int, args: argparse.Namespace,
                 work: Path) -> None:
    questions = sample_questions(args.queries)
    systems = [s for s in args.systems.split(",") if s]
    results = {}
    for system in systems:
        if system == "rank-bm25" and passages > args.rank_bm25_max_passages:
            continue
        print(f"  {name}: {system} ...", file=sys.stderr, flush=True)
        results[system] = run_system(system, corpus, questions, work / name)
    report(name, passages, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", default="100000,1000000",
                        help="synthetic corpus sizes, comma-separated (0: none)")
    parser.add_argument("--queries", type=int, default=3000, help="SQuAD-open questions")
    parser.add_argument("--systems", default=",".join(RUNNERS), help="comma-separated")
    parser.add_argument("--rank-bm25-max-passages", type=int, default=100_000)
    parser.add_argument("--skip-squad", action="store_true")
    parser.add_argument("--work", help="scratch folder (kept; synthetic corpora are reused)")
    parser.add_argument("--worker", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--query-file", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="odqa-bm25-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"scratch folder: {work}; JDK: {find_jdk() or 'none >= 21 found'}")
    if not args.skip_squad:
        squad = work / "squad-dev.jsonl"
        bench_corpus("squad-dev", squad, write_squad_corpus(squad), args, work)
    for size in (int(s) for s in args.passages.split(",") if int(s) > 0):
        synthetic = work / f"synthetic-{size}.jsonl"
        if not synthetic.exists():
            subprocess.run([sys.executable, str(MAKE_SYNTHETIC), str(size), str(synthetic)],
                           check=True)
        bench_corpus(f"synthetic-{size}", synthetic, size, args, work)
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
