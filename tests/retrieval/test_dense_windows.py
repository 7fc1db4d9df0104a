"""Long passages in a dense index: overlapping windows, a passage scored by its best window,
and every build path (CLI, resume, shards + merge, check) carrying each vector's passage."""

from __future__ import annotations

import json
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa import load_index
from odqa.cli import app
from odqa.encoders import DualEncoder
from odqa.encoders.windows import MIN_ROOM, best_window_per_passage, window_spans
from odqa.index.build import BuildOptions, ShardSpec, build_index, temporary_path
from odqa.index.merge import merge_shards
from odqa.io.corpus import CorpusOptions
from odqa.retrieval import dense as dense_module
from odqa.retrieval.dense_options import DenseOptions
from odqa.types import Passage

from tiny_models import save_dpr_pair, save_sentence_transformers

runner = CliRunner()
WORDS = ("paris france river music piano tower bridge king queen water light sun moon earth "
         "planet star violin composer painter museum church university school").split()
MAX_LENGTH = 16


def word_offsets(text: str, pieces: int = 1) -> list[tuple[int, int]]:
    """Token offsets of ``text`` split on spaces, each word cut into ``pieces`` tokens."""
    offsets, position = [], 0
    for word in text.split(" "):
        size = len(word) // pieces
        cuts = [position + i * size for i in range(pieces)] + [position + len(word)]
        offsets += list(pairwise(cuts))
        position += len(word) + 1
    return offsets


@pytest.mark.parametrize("pieces", [1, 2])
def test_windows_cover_the_text_half_overlapping_from_word_starts(pieces: int) -> None:
    text = " ".join(f"w{i:03d}" for i in range(100))
    offsets = word_offsets(text, pieces)
    room = 20
    spans = window_spans(offsets, text, room)
    assert spans[0] == (0, len(text))  # the first window is the passage as truncation reads it
    starts = [next(i for i, o in enumerate(offsets) if o[0] == a) for a, _ in spans[1:]]
    ends = [next(i for i, o in enumerate(offsets) if o[1] == b) for _, b in spans[1:]]
    assert all(text[a - 1] == " " for a, _ in spans[1:])  # every window starts a word
    assert all(end - start + 1 <= room for start, end in zip(starts, ends, strict=True))
    assert ends[-1] == len(offsets) - 1 and spans[-1][1] == len(text)
    steps = np.diff([0, *starts])
    assert steps.min() >= 1 and steps.max() <= room // 2
    assert all(s <= (room // 2) * (n + 1) for n, s in enumerate(starts))
    # windows overlap: each starts before the previous one ends
    assert all(b > a for a, b in zip(starts[1:], ends[:-1], strict=False))


def test_a_text_that_fits_or_a_window_too_small_is_one_window() -> None:
    text = "one two three"
    assert window_spans(word_offsets(text), text, 3) == [(0, len(text))]
    long = " ".join(["word"] * 50)
    assert window_spans(word_offsets(long), long, MIN_ROOM - 1) == [(0, len(long))]
    assert len(window_spans(word_offsets(long), long, MIN_ROOM)) > 1


def test_best_window_per_passage_searches_deeper_when_windows_crowd() -> None:
    rng = np.random.default_rng(1)
    owners = np.repeat(np.arange(6), [40, 1, 2, 1, 3, 1]).astype(np.int64)
    scores = rng.normal(size=(3, len(owners))).astype(np.float32)
    scores[0, :40] += 10  # passage 0's forty windows beat every other window
    depths: list[int] = []

    def search(rows: np.ndarray, depth: int):
        depths.append(depth)
        out = []
        for row in rows:
            s = scores[int(row)]
            order = np.lexsort((np.arange(len(s)), -s))[:depth]
            out.append((order.astype(np.int64), s[order]))
        return out

    results = best_window_per_passage(search, np.arange(3), owners, 4, 6)
    for row, (ids, found) in zip(scores, results, strict=True):
        best = np.array([row[owners == p].max() for p in range(6)], dtype=np.float32)
        expected = np.lexsort((np.arange(6), -best))[:4]
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_array_equal(found, best[expected])
    assert len(depths) > 1 and depths[-1] > depths[0]  # only the crowded query went deeper


def long_text(seed: int, words: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=words))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sentence_transformers(tmp_path_factory.mktemp("st") / "st", max_length=MAX_LENGTH)


def test_window_vectors_are_the_encoder_on_title_and_window(encoder: Path) -> None:
    passages = [Passage("short", "d0", "tower", "paris river"),
                Passage("long", "d1", "music", long_text(0, 60))]
    dual = DualEncoder.from_options(DenseOptions(encoder=str(encoder), device="cpu"))
    vectors, owners = dual.encode_passage_windows(passages)
    assert owners[0] == 0 and np.count_nonzero(owners == 1) >= 4
    np.testing.assert_array_equal(np.diff(owners) >= 0, True)
    truncated = dual.encode_passages(passages)
    np.testing.assert_allclose(vectors[0], truncated[0], atol=1e-6)  # fits: the same vector
    np.testing.assert_allclose(vectors[1], truncated[1], atol=1e-6)  # first window = truncation
    spans = dual.passage.passage_windows(["tower. ", "music. "], [p.text for p in passages], False)
    texts = [f"music. {passages[1].text[a:b]}" for a, b in spans[1][1:]]
    np.testing.assert_allclose(vectors[2:], dual.passage.encode(texts), atol=1e-6)
    lengths = [len(row) for row in dual.passage._runtime.tokenizer(texts)["input_ids"]]
    assert max(lengths) <= MAX_LENGTH  # every window fits whole: nothing is cut again
    tail = passages[1].text.split(" ")[-3:]
    assert texts[-1].endswith(" ".join(tail))


def test_dpr_windows_keep_the_title_as_first_segment(tmp_path: Path) -> None:
    question, context = save_dpr_pair(tmp_path)
    options = DenseOptions(encoder=str(context), query_encoder=str(question), device="cpu",
                           max_length=20)
    dual = DualEncoder.from_options(options)
    passages = [Passage("long", "d", "king", long_text(1, 40))]
    vectors, owners = dual.encode_passage_windows(passages)
    assert len(owners) > 2
    np.testing.assert_allclose(vectors[0], dual.encode_passages(passages)[0], atol=1e-6)
    spans = dual.passage.passage_windows(["king"], [passages[0].text], True)[0]
    windows = [passages[0].text[a:b] for a, b in spans[1:]]
    np.testing.assert_allclose(vectors[1:], dual.passage.encode(["king"] * len(windows), windows),
                               atol=1e-6)


def write_corpus(path: Path, count: int, long_every: int = 3) -> Path:
    rows = [{"id": f"p{i}", "title": WORDS[i % len(WORDS)],
             "text": long_text(i, 50 if i % long_every == 0 else 6)} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_windows_find_a_passage_by_its_tail(encoder: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 12)
    built = {}
    for mode in ("windows", "truncate"):
        out = tmp_path / mode
        result = cli("index", corpus, "--out", out, "--retrievers", "dense", "--encoder", encoder,
                     "--device", "cpu", "--long-passages", mode, "-q")
        assert result.exit_code == 0, result.output
        built[mode] = json.loads((out / "manifest.json").read_text())["families"]["dense"]
        check = cli("info", out, "--check")
        assert check.exit_code == 0, check.output
    windows, truncate = built["windows"], built["truncate"]
    assert truncate["format"] == 1 and truncate["count"] == 12
    assert not (tmp_path / "truncate" / "dense" / "owners.npy").exists()
    assert windows["format"] == 2 and windows["count"] > 12
    assert windows["windows"]["passages_split"] == 4  # p0, p3, p6, p9
    owners = np.load(tmp_path / "windows" / "dense" / "owners.npy")
    assert len(owners) == windows["count"] and sorted(set(owners.tolist())) == list(range(12))
    # a query that is exactly the long passage p3's last window
    dual = DualEncoder.from_options(DenseOptions(encoder=str(encoder), device="cpu"))
    row = json.loads(corpus.read_text().splitlines()[3])
    head, text = f"{row['title']}. ", row["text"]
    start, end = dual.passage.passage_windows([head], [text], False)[0][-1]
    query = head + text[start:end]
    found = {}
    for mode in ("windows", "truncate"):
        result = cli("search", query, "-i", tmp_path / mode, "--retriever", "dense", "-k", "3",
                     "--format", "jsonl")
        assert result.exit_code == 0, result.output
        found[mode] = json.loads(result.stdout)["hits"]
    assert found["windows"][0]["id"] == "p3" and found["windows"][0]["score"] > 0.999
    top_truncated = {h["id"]: h["score"] for h in found["truncate"]}
    assert top_truncated.get("p3", 0.0) < 0.99  # truncation never saw that text
    assert len({h["id"] for h in found["windows"]}) == 3  # each passage once


def test_search_equals_the_best_window_by_brute_force(encoder: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 20)
    options = BuildOptions(retrievers=("dense",),
                           dense=DenseOptions(encoder=str(encoder), device="cpu", chunk_size=7))
    build_index([corpus], tmp_path / "idx", options)
    index = load_index(tmp_path / "idx")
    dual = DualEncoder.from_options(DenseOptions(encoder=str(encoder), device="cpu"))
    passages = index.passages.get_many(list(range(20)))
    vectors, owners = dual.encode_passage_windows(passages)
    questions = ["music tower", "king queen river", "violin"]
    queries = dual.encode_queries(questions)
    retriever = index.retriever("dense")
    for query, (ids, scores) in zip(queries, retriever.search_ids(questions, 5), strict=True):
        windows = vectors @ query
        best = np.array([windows[owners == p].max() for p in range(20)], dtype=np.float32)
        expected = np.lexsort((np.arange(20), -best))[:5]
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_allclose(scores, best[expected], atol=1e-4)


def test_resumed_windows_build_equals_one_uninterrupted(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 30)
    options = BuildOptions(retrievers=("dense",),
                           dense=DenseOptions(encoder=str(encoder), device="cpu", chunk_size=10))
    build_index([corpus], tmp_path / "whole", options)
    original, done = dense_module.encode_range, []

    def interrupted(*args, **kwargs):
        if len(done) == 1:
            raise KeyboardInterrupt
        done.append(original(*args, **kwargs))
        return done[-1]

    monkeypatch.setattr(dense_module, "encode_range", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index([corpus], tmp_path / "resumed", options)
    chunks = temporary_path(tmp_path / "resumed") / "dense" / "chunks"
    assert sorted(p.name for p in chunks.iterdir()) == ["00000.npy", "00000.owners.npy"]
    monkeypatch.setattr(dense_module, "encode_range", original)
    build_index([corpus], tmp_path / "resumed", options, resume=True)
    for name in ("index.faiss", "owners.npy"):
        whole, resumed = (tmp_path / f / "dense" / name for f in ("whole", "resumed"))
        assert whole.read_bytes() == resumed.read_bytes(), name


def test_shards_with_windows_merge_into_the_one_process_index(
    encoder: Path, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 40)
    options = BuildOptions(retrievers=("dense",), corpus=CorpusOptions(),
                           dense=DenseOptions(encoder=str(encoder), device="cpu", chunk_size=10))
    whole = build_index([corpus], tmp_path / "whole", options).section("dense")
    shards = [tmp_path / f"s{n}" for n in range(2)]
    for number, shard in enumerate(shards):
        build_index([corpus], shard, options, shard=ShardSpec(number, 2))
    merged = merge_shards(shards, tmp_path / "merged").section("dense")
    assert merged["count"] == whole["count"] > 40 and merged["format"] == whole["format"] == 2
    assert merged["windows"] == whole["windows"]
    for name in ("owners.npy", "index.faiss"):
        a, b = (tmp_path / f / "dense" / name for f in ("whole", "merged"))
        assert a.read_bytes() == b.read_bytes(), name
    questions = ["music tower", "king queen river"]
    hits = [load_index(p).search(questions, k=8, retriever="dense")
            for p in (tmp_path / "whole", tmp_path / "merged", tmp_path)]  # last: unmerged shards
    assert [[(h.id, round(h.score, 5)) for h in q] for q in hits[0]] == [
        [(h.id, round(h.score, 5)) for h in q] for q in hits[1]] == [
        [(h.id, round(h.score, 5)) for h in q] for q in hits[2]]


def test_damaged_owners_is_a_one_line_error(encoder: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 9)
    out = tmp_path / "idx"
    assert cli("index", corpus, "--out", out, "--retrievers", "dense", "--encoder", encoder,
               "--device", "cpu", "-q").exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    np.save(copy / "dense" / "owners.npy", np.arange(5, dtype=np.int64))
    searches = (("search", "music", "-i", copy, "--retriever", "dense"), ("info", copy, "--check"))
    for args in searches:
        result = cli(*args)
        assert result.exit_code in (1, 2), result.output
        assert "owners.npy" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    shutil.copytree(out, tmp_path / "gaps")
    owners = np.load(out / "dense" / "owners.npy")
    np.save(tmp_path / "gaps" / "dense" / "owners.npy", np.minimum(owners, 7))  # passage 8 lost
    for args in (("info", tmp_path / "gaps", "--check"),
                 ("search", "music", "-i", tmp_path / "gaps", "--retriever", "dense")):
        result = cli(*args)
        assert result.exit_code in (1, 2) and "does not run through passages" in result.output
    shutil.copytree(out, tmp_path / "lost")
    (tmp_path / "lost" / "dense" / "owners.npy").unlink()
    result = cli("search", "music", "-i", tmp_path / "lost", "--retriever", "bm25")
    assert result.exit_code in (1, 2) and "owners.npy" in result.output  # the manifest's files
    for name, change in (("no-record", lambda d: d.pop("windows")),
                         ("no-file", lambda d: d["windows"].pop("owners"))):
        shutil.copytree(out, tmp_path / name)
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        change(manifest["families"]["dense"])
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
        result = cli("search", "music", "-i", tmp_path / name, "--retriever", "dense")
        assert result.exit_code in (1, 2), result.output
        assert "windows record" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_search_that_runs_out_of_windows_is_not_repeated() -> None:
    owners = np.repeat(np.arange(4), [40, 1, 1, 1]).astype(np.int64)  # first depth 41 of 43
    depths: list[int] = []

    def search(rows: np.ndarray, depth: int):  # like IVF with few lists visited: 5 hits at most
        depths.append(depth)
        return [(np.arange(5, dtype=np.int64), np.linspace(1, 0, 5, dtype=np.float32))
                for _ in rows]

    [(ids, scores)] = best_window_per_passage(search, np.zeros((1, 2)), owners, 3, 4)
    assert scores.tolist() == [1.0]
    assert ids.tolist() == [0] and len(depths) == 1


class StartHeavyTokenizer:
    """One token per word, but a word starting with "x" costs two at the very start of a text
    (as a byte-level BPE word without its leading space can)."""

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 2

    def __call__(self, texts, return_offsets_mapping=False, **_):
        rows, offsets = [], []
        for text in texts:
            spans, position = [], 0
            for word in text.split(" "):
                if word:
                    spans.append((position, position + len(word)))
                position += len(word) + 1
            heavy = bool(spans) and spans[0][0] == 0 and text.startswith("x")
            rows.append([0] * (len(spans) + heavy))
            offsets.append(spans)
        mapping = {"offset_mapping": offsets} if return_offsets_mapping else {}
        return {"input_ids": rows, **mapping}


def test_a_window_that_grows_when_cut_out_is_split_with_less_room() -> None:
    from odqa.encoders.spec import EncoderSpec
    from odqa.encoders.text_encoder import TextEncoder, _Runtime

    tokenizer = StartHeavyTokenizer()
    encoder = TextEncoder(EncoderSpec("fake", "fake", None, "hf", "mean", False, 2 + 12))
    encoder._runtime = _Runtime(lambda runtime: setattr(runtime, "tokenizer", tokenizer))
    text = " ".join("xw" if i % 6 == 0 else "w" for i in range(60))
    [spans] = encoder.passage_windows([""], [text], False)
    lengths = [len(row) for row in tokenizer([text[a:b] for a, b in spans[1:]])["input_ids"]]
    assert len(spans) > 2 and max(lengths) <= 12
    assert spans[-1][1] == len(text)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_indexes_return_distinct_passages_by_best_window(
    encoder: Path, tmp_path: Path, kind: str
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 60)
    dense = DenseOptions(encoder=str(encoder), device="cpu", faiss=kind, ef_search=512,
                         nprobe=64)
    build_index([corpus], tmp_path / "idx", BuildOptions(retrievers=("dense",), dense=dense))
    index = load_index(tmp_path / "idx")
    section = index.manifest.section("dense")
    assert section["format"] == 2 and section["count"] > 60
    dual = DualEncoder.from_options(DenseOptions(encoder=str(encoder), device="cpu"))
    vectors, owners = dual.encode_passage_windows(index.passages.get_many(list(range(60))))
    questions = ["music tower", "king queen river", "violin composer"]
    queries = dual.encode_queries(questions)
    for query, (ids, scores) in zip(queries, index.retriever("dense").search_ids(questions, 20),
                                    strict=True):
        assert len(ids) == len(set(ids.tolist())) == 20
        assert np.all(np.diff(scores) <= 1e-6)
        windows = vectors @ query
        best = np.array([windows[owners == p].max() for p in range(60)])
        assert int(ids[0]) == int(np.argmax(best))
        if kind == "hnsw":  # a beam this wide over a few hundred windows is exact
            np.testing.assert_allclose(scores, np.sort(best)[::-1][:20], atol=1e-4)


def test_no_passages_asked_means_no_search() -> None:
    owners = np.repeat(np.arange(3), [2, 1, 1]).astype(np.int64)

    def search(rows: np.ndarray, depth: int):
        raise AssertionError("searched for k = 0")

    for k in (0, -2):
        results = best_window_per_passage(search, np.zeros((2, 4)), owners, k, 3)
        assert [(len(ids), len(scores)) for ids, scores in results] == [(0, 0), (0, 0)]


def test_an_unknown_long_passages_choice_is_refused(tmp_path: Path) -> None:
    from odqa.errors import OdqaError

    with pytest.raises(OdqaError, match="unknown long_passages 'cut'"):
        DenseOptions(long_passages="cut")
    corpus = write_corpus(tmp_path / "c.jsonl", 3)
    result = cli("index", corpus, "--out", tmp_path / "idx", "--long-passages", "cut")
    assert result.exit_code == 2 and "'cut' is not one of" in result.output
    assert not (tmp_path / "idx").exists()
