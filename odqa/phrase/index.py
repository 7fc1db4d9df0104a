"""The phrase index: every kept passage token's start and end vector, searched by inner product.

Build (``odqa index --retrievers phrase``): passages are encoded once, independently of any
question, as ``[CLS] title [SEP] text [SEP]`` windows in length-sorted batches; a token of the
text is kept when its filter logit for starting or ending an answer reaches
``filter_threshold``. Chunks of passages are written as they finish (``chunks/NNNNN``), so
``--resume`` continues an interrupted build. At the end the kept tokens are laid out in passage
order in memory-mapped arrays:

    tokens.npy        [T, 4] int32: passage, position in the passage, char start, char end
    flags.npy         [T] uint8: bit 0 = start candidate, bit 1 = end candidate
    start.npy         [T, d] float16: start vectors (exact re-scoring)
    end.npy           [T, d] float16: end vectors (absent when start and end are one vector)
    start.faiss       start candidates, FAISS flat / SQ8 / IVF-PQ (ids = token rows)
    end.faiss         end candidates

Search: the question's ``q_start`` finds the best start tokens and ``q_end`` the best end
tokens; each start is extended to every end token of its passage at most
``max_answer_length`` tokens on (and each end back to its starts), all re-scored exactly from
the float16 vectors; the best spans win (DensePhrases' rule: one passage, start <= end).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import IndexLoadError, OdqaError

PHRASE_FORMAT = "odqa-phrase-1"
INDEX_FILES = ("tokens.npy", "flags.npy", "start.npy")
"""Files every phrase index folder has (``end.npy`` and the FAISS files depend on the model)."""
INDEX_KINDS = ("flat", "sq8", "ivfpq")
CHUNKS = "chunks"
STATE = "build-state.json"
DONE = "done"
START, END = 1, 2


@dataclass(frozen=True)
class PhraseOptions:
    """Build settings of a phrase index (recorded in the manifest)."""

    encoder: str = "odqa/phrase-minilm"
    filter_threshold: float = -4.0
    index: str = "sq8"
    max_length: int = 384
    doc_stride: int = 128
    batch_size: int = 64
    chunk_size: int = 512
    nlist: int | None = None
    pq_m: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.index not in INDEX_KINDS:
            raise OdqaError(
                f"unknown --phrase-index '{self.index}': choose one of {', '.join(INDEX_KINDS)}"
            )
        if self.chunk_size < 1 or self.batch_size < 1:
            raise OdqaError("--batch-size and the chunk size must be at least 1")

    def persisted(self) -> dict[str, Any]:
        """What decides the index's content (device and batching do not)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "batch_size")}


@dataclass(frozen=True)
class EncodedPassages:
    """Kept tokens of some passages: rows of ``tokens.npy``/``flags.npy``/vectors."""

    tokens: np.ndarray
    flags: np.ndarray
    start: np.ndarray
    end: np.ndarray | None
    text_tokens: int = 0
    """Text tokens read (kept or not), for the kept share."""


MAX_TITLE_TOKENS = 32


def passage_windows(tokenizer, titles: list[str], texts: list[str], max_length: int,
                    doc_stride: int):
    """``[CLS] title [SEP] text [SEP]`` windows with offsets: the one passage encoding of the
    phrase index and of phrase training (titles cut to ``MAX_TITLE_TOKENS`` tokens)."""
    cut = []
    enc_titles = tokenizer(titles, add_special_tokens=False, return_offsets_mapping=True)
    for title, offsets in zip(titles, enc_titles["offset_mapping"]):
        long = len(offsets) > MAX_TITLE_TOKENS
        cut.append(title[: offsets[MAX_TITLE_TOKENS - 1][1]] if long else title)
    longest = max((min(len(o), MAX_TITLE_TOKENS) for o in enc_titles["offset_mapping"]),
                  default=0)
    room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
    if room < 2:
        raise OdqaError(f"--max-seq-length {max_length} leaves no room for passage text")
    return tokenizer(
        cut, texts, truncation="only_second", max_length=max_length,
        stride=max(0, min(doc_stride, room - 1)), return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _device(name: str) -> str:
    from odqa.runtime.hub import resolve_device

    return resolve_device(name)


class PhraseEncoder:
    """A loaded phrase model that turns passages into kept token vectors and questions into
    query vectors (numpy float32)."""

    def __init__(self, name: str, device: str = "auto") -> None:
        from odqa.phrase.model import load_phrase_model

        self.name = name
        self.device = _device(device)
        self.model, self.tokenizer = load_phrase_model(name)
        self.model.to(self.device)
        self.same_vectors = not self.model.config.heads

    def encode_queries(self, questions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``q_start``, ``q_end`` [n, d] float32."""
        import torch

        enc = self.tokenizer(questions, padding=True, truncation=True,
                             max_length=self.model.config.max_query_length, return_tensors="pt")
        with torch.inference_mode():
            qs, qe = self.model.encode_queries(**{k: v.to(self.device) for k, v in enc.items()})
        return qs.float().cpu().numpy(), qe.float().cpu().numpy()

    def encode_passages(
        self, first: int, titles: list[str], texts: list[str], options: PhraseOptions
    ) -> EncodedPassages:
        """Kept tokens of passages ``first, first + 1, ...`` (titles may be empty)."""
        import torch

        from odqa.runtime.batching import length_sorted_batches, pad_ids

        enc = passage_windows(self.tokenizer, titles, texts, options.max_length,
                              options.doc_stride)
        pad = self.tokenizer.pad_token_id or 0
        seen: set[tuple[int, int]] = set()
        rows: list[np.ndarray] = []
        flags: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        lengths = [len(ids) for ids in enc["input_ids"]]
        for batch in length_sorted_batches(lengths, options.batch_size):
            ids, mask = pad_ids([enc["input_ids"][w] for w in batch], pad)
            inputs = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in enc:
                inputs["token_type_ids"] = pad_ids([enc["token_type_ids"][w] for w in batch], 0)[0]
            with torch.inference_mode():
                s, e, fs, fe = self.model.encode_phrases(
                    **{k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
                )
            s, e = s.float().cpu().numpy(), e.float().cpu().numpy()
            fs, fe = fs.float().cpu().numpy(), fe.float().cpu().numpy()
            for r, w in enumerate(batch):
                passage = first + enc["overflow_to_sample_mapping"][w]
                sequence = enc.sequence_ids(w)
                offsets = enc["offset_mapping"][w]
                for t, seq in enumerate(sequence):
                    if seq != 1 or (passage, offsets[t][0]) in seen:
                        continue
                    flag = (START if fs[r, t] >= options.filter_threshold else 0) | (
                        END if fe[r, t] >= options.filter_threshold else 0)
                    seen.add((passage, offsets[t][0]))
                    if not flag:
                        continue
                    rows.append(np.array([passage, 0, offsets[t][0], offsets[t][1]], np.int32))
                    flags.append(np.array(flag, dtype=np.uint8))
                    starts.append(s[r, t].astype(np.float16))
                    ends.append(e[r, t].astype(np.float16))
        dim = self.model.dim
        if not rows:
            empty = np.zeros((0, dim), np.float16)
            return EncodedPassages(np.zeros((0, 4), np.int32), np.zeros(0, np.uint8), empty,
                                   None if self.same_vectors else empty, len(seen))
        tokens = np.stack(rows)
        order = np.lexsort((tokens[:, 2], tokens[:, 0]))
        tokens = tokens[order]
        # position = rank of the token among its passage's tokens by character offset
        tokens[:, 1] = _positions(tokens[:, 0], tokens[:, 2], titles, texts, first, self)
        return EncodedPassages(
            tokens, np.asarray(flags)[order], np.stack(starts)[order],
            None if self.same_vectors else np.stack(ends)[order], len(seen),
        )


def _positions(passages, char_starts, titles, texts, first, encoder) -> np.ndarray:
    """Token position of each kept token in its passage text (by character start); the
    passages' texts are tokenised in one batch."""
    from odqa.runtime.hub import quiet_transformers

    out = np.zeros(len(passages), dtype=np.int32)
    unique = np.unique(passages)
    with quiet_transformers():  # long passages exceed the model's length: only offsets needed
        offsets = encoder.tokenizer([texts[p - first] for p in unique], add_special_tokens=False,
                                    return_offsets_mapping=True)["offset_mapping"]
    for p, passage_offsets in zip(unique, offsets, strict=True):
        rows = np.flatnonzero(passages == p)
        token_starts = np.array([o[0] for o in passage_offsets], dtype=np.int64)
        out[rows] = np.searchsorted(token_starts, char_starts[rows], side="left")
    return out


def _digest(passages) -> str:
    digest = hashlib.sha256()
    sample = np.arange(0, len(passages), max(1, len(passages) // 64))
    for passage in passages.get_many(sample):
        digest.update(passage.text.encode("utf-8"))
    digest.update(str(len(passages)).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def cached_phrase_encoder(name: str, device: str) -> PhraseEncoder:
    """The phrase encoder ``name`` on ``device``, loaded once per process."""
    return PhraseEncoder(name, device)


def encode_phrase_range(
    store_folder: Path, begin: int, end: int, options: PhraseOptions, target: Path
) -> int:
    """Work unit: encode passages ``begin:end`` of the store at ``store_folder`` into the
    chunk folder ``target`` (written atomically); return the number of passages."""
    from odqa.index.passages import PassageStore

    store = PassageStore(store_folder)
    try:
        items = store.get_many(np.arange(begin, end))
    finally:
        store.close()
    encoder = cached_phrase_encoder(options.encoder, options.device)
    part = encoder.encode_passages(begin, [p.title for p in items], [p.text for p in items],
                                   options)
    _write_chunk(target, part)
    return end - begin


def build_phrase(
    folder: Path, passages: Any, options: PhraseOptions, *, resume: bool = False,
    progress: Any = None, executor: Any = None,
) -> dict[str, Any]:
    """Encode ``passages`` into a phrase index in ``folder``; return the manifest section.
    ``executor`` runs the encoding units (default: this process)."""
    from odqa.index.executors import InProcess, WorkUnit, passage_ranges

    encoder = cached_phrase_encoder(options.encoder, options.device)
    folder.mkdir(parents=True, exist_ok=True)
    chunks = folder / CHUNKS
    state = {"options": options.persisted(), "passages": len(passages),
             "digest": _digest(passages)}
    state_file = folder / STATE
    if chunks.is_dir() and not (resume and state_file.is_file()
                                and json.loads(state_file.read_text()) == state):
        shutil.rmtree(chunks)
    chunks.mkdir(exist_ok=True)
    state_file.write_text(json.dumps(state), encoding="utf-8")
    for leftover in chunks.glob("*.tmp"):
        shutil.rmtree(leftover)
    units = []
    for number, (begin, end) in enumerate(passage_ranges(len(passages), options.chunk_size)):
        target = chunks / f"{number:05d}"
        units.append(WorkUnit(encode_phrase_range, (passages.folder, begin, end, options, target),
                              target, end - begin))
    (executor or InProcess()).run(units, progress, "phrase encoding")
    parts = sorted(chunks.iterdir())
    tokens_in_corpus = sum(int((p / DONE).read_text() or 0) for p in parts)
    section = _assemble(folder, parts, options, encoder.same_vectors)
    shutil.rmtree(chunks)
    state_file.unlink()
    section.update({
        "format": PHRASE_FORMAT,
        "encoder": options.encoder,
        "options": options.persisted(),
        "dimension": encoder.model.dim,
        "same_start_end": encoder.same_vectors,
        "corpus_tokens": tokens_in_corpus,
        "kept_share": round(section["tokens"] / max(1, tokens_in_corpus), 4),
    })
    from odqa.phrase.query_onnx import EXPORT_DIR, export_phrase_queries

    section["query_onnx"] = export_phrase_queries(encoder, folder / EXPORT_DIR)
    return section


def merge_phrase(folder: Path, parts: list[Any], progress: Any = None) -> dict[str, Any]:
    """The phrase folder of a merged index from its shards' (``ShardPart``) folders: token
    rows and vectors concatenated in passage order, FAISS indexes built anew.

    Raises:
        OdqaError: shards built with different phrase models or options.
    """
    first = parts[0].section
    for part in parts:
        if (part.section.get("encoder"), part.section.get("options")) != (
            first.get("encoder"), first.get("options")
        ):
            raise OdqaError(f"{part.folder}: the shards' phrase models or options differ: "
                            "rebuild the shards with one command line")
    options = PhraseOptions(**first["options"])
    folder.mkdir(parents=True, exist_ok=True)
    section = _assemble(folder, [p.folder for p in parts], options, first["same_start_end"],
                        [p.start for p in parts])
    corpus_tokens = sum(int(p.section.get("corpus_tokens", 0)) for p in parts)
    from odqa.phrase.query_onnx import EXPORT_DIR

    if (parts[0].folder / EXPORT_DIR).is_dir():
        shutil.copytree(parts[0].folder / EXPORT_DIR, folder / EXPORT_DIR)
    return {
        **first,
        **section,
        "corpus_tokens": corpus_tokens,
        "kept_share": round(section["tokens"] / max(1, corpus_tokens), 4),
    }


def _write_chunk(target: Path, part: EncodedPassages) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.save(tmp / "tokens.npy", part.tokens)
    np.save(tmp / "flags.npy", part.flags)
    np.save(tmp / "start.npy", part.start)
    if part.end is not None:
        np.save(tmp / "end.npy", part.end)
    (tmp / DONE).write_text(str(part.text_tokens))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _concat(paths: list[Path], name: str, out: Path,
            first_passages: list[int] | None = None) -> np.ndarray:
    """``name`` of every folder concatenated into ``out``; ``first_passages`` shifts the passage
    column of token rows (shards number their passages from 0)."""
    parts = [np.load(p / name, allow_pickle=False) for p in paths]
    if first_passages is not None:
        parts = [part + np.array([first, 0, 0, 0], dtype=part.dtype)
                 for part, first in zip(parts, first_passages, strict=True)]
    array = np.concatenate(parts) if parts else np.zeros(0)
    np.save(out / name, array)
    return np.load(out / name, mmap_mode="r", allow_pickle=False)


def _faiss_index(vectors: np.ndarray, options: PhraseOptions):
    import faiss

    dim = vectors.shape[1]
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    index: Any
    if options.index == "flat" or len(data) < 1024:
        index = faiss.IndexFlatIP(dim)
    elif options.index == "sq8":
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit,
                                           faiss.METRIC_INNER_PRODUCT)
        index.train(data)
    else:
        nlist = options.nlist or max(1, min(4096, int(4 * np.sqrt(len(data)))))
        pq_m = options.pq_m or next(m for m in (48, 32, 24, 16, 12, 8, 4, 2, 1) if dim % m == 0)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        index.train(data)
        index.nprobe = min(nlist, 32)
    index.add(data)
    return index


def _assemble(folder: Path, paths: list[Path], options: PhraseOptions, same: bool,
              first_passages: list[int] | None = None) -> dict:
    tokens = _concat(paths, "tokens.npy", folder, first_passages)
    flags = _concat(paths, "flags.npy", folder)
    start = _concat(paths, "start.npy", folder)
    end = start if same else _concat(paths, "end.npy", folder)
    if len(tokens) == 0:
        raise OdqaError(
            "the phrase filter kept no token: lower --phrase-filter-threshold (logits; default "
            f"{PhraseOptions.filter_threshold})"
        )
    written = {}
    for name, bit, vectors in (("start", START, start), ("end", END, end)):
        rows = np.flatnonzero(np.asarray(flags) & bit).astype(np.int64)
        written[name] = len(rows)
        _write_faiss(folder / f"{name}.faiss", vectors, rows, options)
    return {"tokens": len(tokens), "start_candidates": written["start"],
            "end_candidates": written["end"], "index": options.index}


def _write_faiss(path: Path, vectors: np.ndarray, rows: np.ndarray, options: PhraseOptions):
    """FAISS index of ``vectors[rows]``; ``NAME.rows.npy`` maps its positions to token rows."""
    import faiss

    if not len(rows):
        return
    faiss.write_index(_faiss_index(np.asarray(vectors[rows]), options), str(path))
    np.save(path.with_suffix(".rows.npy"), rows)


class PhraseIndex:
    """An opened phrase index (arrays memory-mapped)."""

    def __init__(self, folder: Path, section: dict[str, Any], passage_count: int) -> None:
        import faiss

        if section.get("format") != PHRASE_FORMAT:
            raise IndexLoadError(f"{folder}: not an {PHRASE_FORMAT} phrase index; rebuild it")
        try:
            self.tokens = np.load(folder / "tokens.npy", mmap_mode="r", allow_pickle=False)
            self.flags = np.load(folder / "flags.npy", mmap_mode="r", allow_pickle=False)
            self.start = np.load(folder / "start.npy", mmap_mode="r", allow_pickle=False)
            self.end = self.start if section["same_start_end"] else np.load(
                folder / "end.npy", mmap_mode="r", allow_pickle=False)
            self.faiss = {}
            self.rows = {}
            for name in ("start", "end"):
                path = folder / f"{name}.faiss"
                if path.is_file():
                    self.faiss[name] = faiss.read_index(str(path))
                    self.rows[name] = np.load(path.with_suffix(".rows.npy"), allow_pickle=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexLoadError(f"{folder}: damaged phrase index ({exc}); rebuild it") from None
        if len(self.tokens) != section["tokens"] or (
            len(self.tokens) and int(self.tokens[:, 0].max()) >= passage_count
        ):
            raise IndexLoadError(f"{folder}: token count does not match the manifest; rebuild it")
        self.section = section
        self.passage_of = np.asarray(self.tokens[:, 0])
        self.position = np.asarray(self.tokens[:, 1])
        self.flag_bits = np.asarray(self.flags)
        self.passage_count = passage_count
        self._bounds: np.ndarray | None = None

    def spans(
        self, q_start: np.ndarray, q_end: np.ndarray, *, candidates: int, max_answer_length: int,
        top: int,
    ) -> list[np.ndarray]:
        """Per query, the best spans as rows ``(start token, end token, score)``, best first."""
        results = []
        found = {name: self._search(name, q, candidates) for name, q in
                 (("start", q_start), ("end", q_end))}
        for qi in range(len(q_start)):
            spans = self._extend(q_start[qi], q_end[qi], found["start"][qi], found["end"][qi],
                                 max_answer_length)
            results.append(spans[:top])
        return results

    def passage_spans(
        self, passages: np.ndarray, q_start: np.ndarray, q_end: np.ndarray, *,
        max_answer_length: int, top: int,
    ) -> np.ndarray:
        """The ``top`` best spans of each of ``passages`` for one query, found exhaustively
        over the passage's kept tokens: rows ``(start token, end token, score)``."""
        if self._bounds is None:
            self._bounds = np.searchsorted(self.passage_of, np.arange(self.passage_count + 1))
        found = []
        for p in np.asarray(passages, dtype=np.int64):
            rows = np.arange(self._bounds[p], self._bounds[p + 1])
            starts = rows[self.flag_bits[rows] & START > 0]
            ends = rows[self.flag_bits[rows] & END > 0]
            if not len(starts) or not len(ends):
                continue
            s = np.asarray(self.start[starts], dtype=np.float32) @ q_start
            e = np.asarray(self.end[ends], dtype=np.float32) @ q_end
            gap = self.position[ends][None, :] - self.position[starts][:, None]
            total = np.where((gap >= 0) & (gap < max_answer_length), s[:, None] + e[None, :],
                             -np.inf)
            best = np.argsort(-total, axis=None, kind="stable")[:top]
            i, j = np.unravel_index(best, total.shape)
            valid = np.isfinite(total[i, j])
            found.append(np.column_stack([starts[i[valid]], ends[j[valid]],
                                          total[i[valid], j[valid]]]))
        return np.concatenate(found) if found else np.zeros((0, 3))

    def _search(self, name: str, queries: np.ndarray, k: int) -> list[np.ndarray]:
        if name not in self.faiss:
            return [np.zeros(0, np.int64) for _ in range(len(queries))]
        index = self.faiss[name]
        _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32),
                              min(k, index.ntotal))
        rows = self.rows[name]
        return [rows[i[i >= 0]] for i in ids]

    def _extend(self, qs, qe, starts, ends, max_len) -> np.ndarray:
        """Every valid span from a start candidate forwards and an end candidate backwards:
        both ends kept by the filter, in one passage, ``j - i < max_len`` (vectorised)."""
        steps = np.arange(max_len, dtype=np.int64)
        starts, ends = np.unique(starts), np.unique(ends)
        ends_after, after = self._partners(starts, starts[:, None] + steps, END, max_len)
        starts_before, before = self._partners(ends, ends[:, None] - steps, START, max_len)
        pairs = np.concatenate([
            np.column_stack([np.broadcast_to(starts[:, None], after.shape)[after],
                             ends_after[after]]),
            np.column_stack([starts_before[before],
                             np.broadcast_to(ends[:, None], before.shape)[before]]),
        ]).astype(np.int64)
        if not len(pairs):
            return np.zeros((0, 3))
        pairs = np.unique(pairs, axis=0)
        s = np.asarray(self.start[pairs[:, 0]], dtype=np.float32) @ qs
        e = np.asarray(self.end[pairs[:, 1]], dtype=np.float32) @ qe
        scores = s + e
        order = np.lexsort((pairs[:, 1], pairs[:, 0], -scores))
        return np.column_stack([pairs[order], scores[order]])

    def _partners(self, anchors: np.ndarray, rows: np.ndarray, bit: int,
                  max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` (one line per anchor token) clipped to the index, and which of them are in
        the anchor's passage, fewer than ``max_len`` tokens away and flagged ``bit``."""
        inside = (rows >= 0) & (rows < len(self.passage_of))
        safe = np.clip(rows, 0, max(len(self.passage_of) - 1, 0))
        valid = (inside & (self.passage_of[safe] == self.passage_of[anchors][:, None])
                 & (np.abs(self.position[safe] - self.position[anchors][:, None]) < max_len)
                 & (self.flag_bits[safe] & bit > 0))
        return safe, valid

    def chars(self, token_start: int, token_end: int) -> tuple[int, int, int]:
        """(passage, char start, char end) of a span of token rows."""
        return (int(self.tokens[token_start, 0]), int(self.tokens[token_start, 2]),
                int(self.tokens[token_end, 3]))
