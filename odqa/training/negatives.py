"""BM25 hard negatives for training: paragraphs that rank high for a question but do not answer it.

Both ``odqa train dense`` (a hard negative column per question) and ``odqa train reader``
(negative passages read beside the gold one) draw them here, from an odqa BM25 index of every
distinct training paragraph (also those of questions left out of the sample).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from odqa.training.data import QAExample

SEARCH_CHUNK = 1024


def paragraph_table(examples: list[QAExample]) -> tuple[list[tuple[str, str]], dict]:
    """The distinct (title, context) paragraphs of ``examples``, in first-seen order, and the
    position of each."""
    ids: dict[tuple[str, str], int] = {}
    for e in examples:
        ids.setdefault((e.title, e.context), len(ids))
    return list(ids), ids


def bm25_negatives(
    examples: list[QAExample], paragraphs: list[tuple[str, str]], positive: np.ndarray,
    depth: int, scratch: Path, count: int = 1,
) -> np.ndarray:
    """Per example, the ``count`` best BM25-ranked paragraphs (indices into ``paragraphs``, as
    (title, text)) that are not its own and hold none of its answers, best first; -1 fills a
    row whose top ``depth`` results have fewer. The index is built once into ``scratch``."""
    from odqa import load_index
    from odqa.evaluate import has_answer
    from odqa.index.build import BuildOptions, build_index
    from odqa.io.corpus import CorpusOptions

    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / "bm25"
    if not (out / "manifest.json").is_file():
        corpus = scratch / "paragraphs.jsonl"
        with corpus.open("w", encoding="utf-8") as handle:
            for i, (title, text) in enumerate(paragraphs):
                handle.write(json.dumps({"id": str(i), "title": title, "text": text}) + "\n")
        build_index([corpus], out, BuildOptions(corpus=CorpusOptions(passage_words=0)))
    index = load_index(str(out))
    found = np.full((len(examples), count), -1, dtype=np.int64)
    for begin in range(0, len(examples), SEARCH_CHUNK):
        chunk = examples[begin : begin + SEARCH_CHUNK]
        results = index.search([e.question for e in chunk], depth, "bm25")
        for row, (e, hits) in enumerate(zip(chunk, results), start=begin):
            kept = 0
            for hit in hits:
                candidate = int(hit.id)
                if candidate == positive[row] or has_answer(e.answers or (e.answer_text,),
                                                            hit.text):
                    continue
                found[row, kept] = candidate
                kept += 1
                if kept == count:
                    break
    return found
