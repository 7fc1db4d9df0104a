"""Retriever families are plug-ins: a toy family registered from this test is built, validated,
opened, fused by the hybrid, checked by `odqa info --check` and searched through the CLI, with
no change to odqa's code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa.cli import app
from odqa.errors import IndexLoadError, OdqaError
from odqa.index.build import BuildOptions, build_index
from odqa.index.families import FAMILIES, Family, register_family, retriever_names
from odqa.index.store import Index

from conftest import SAMPLE_CORPUS

runner = CliRunner()
TITLES = "titles.json"


class TitleRetriever:
    """Ranks passages by how many query words their title holds (ties by passage order)."""

    def __init__(self, folder: Path, *, boost: float = 1.0) -> None:
        self.titles = [set(t.split()) for t in json.loads((folder / TITLES).read_text())]
        self.boost = boost

    def search_ids(self, queries: list[str], k: int):
        results = []
        for query in queries:
            words = set(query.lower().split())
            scores = np.array([len(words & t) * self.boost for t in self.titles], np.float32)
            ids = np.flatnonzero(scores > 0)
            order = np.lexsort((ids, -scores[ids]))[:k]
            results.append((ids[order].astype(np.int64), scores[ids][order]))
        return results


class TitleFamily:
    """The toy family: one JSON list of lower-cased titles."""

    name = "titles"
    summary = "title words (a test family)"
    schema: ClassVar[dict[str, type]] = {"titles": int, "lowercase": bool}
    search_options = ("boost",)
    resumable = False

    def options(self, build: BuildOptions) -> Any:
        return build.extra.get(self.name, {"lowercase": True})

    def builder(self, folder: Path, options: Any, context: Any):
        titles: list[str] = []

        class Builder:
            def add(self, passage) -> None:
                titles.append(passage.title.lower() if options["lowercase"] else passage.title)

            def finish(self, passages, progress) -> dict[str, Any]:
                folder.mkdir()
                (folder / TITLES).write_text(json.dumps(titles))
                return {"titles": len(titles), "lowercase": options["lowercase"]}

        return Builder()

    def merge(self, folder: Path, parts: list[Any], progress: Any) -> dict[str, Any]:
        titles = [t for part in parts for t in json.loads((part.folder / TITLES).read_text())]
        folder.mkdir()
        (folder / TITLES).write_text(json.dumps(titles))
        return {"titles": len(titles), "lowercase": parts[0].section["lowercase"]}

    def files(self, section: dict[str, Any]) -> list[str]:
        return [TITLES]

    def open(self, folder: Path, section: dict[str, Any], passages: int,
             options: dict[str, Any]) -> TitleRetriever:
        return TitleRetriever(folder, **options)

    def check(self, folder: Path, section: dict[str, Any], passages: int) -> list[str]:
        count = len(json.loads((folder / TITLES).read_text()))
        if count != passages:
            raise IndexLoadError(f"{folder / TITLES}: {count} titles for {passages} passages")
        return [f"titles/: {count} titles"]

    def summary_rows(self, section: dict[str, Any]) -> list[tuple[str, str]]:
        return [("titles", str(section["titles"]))]


@pytest.fixture()
def titles_family() -> Iterator[TitleFamily]:
    family = register_family(TitleFamily())
    try:
        yield family
    finally:
        FAMILIES.pop(family.name, None)


@pytest.fixture()
def titled_index(titles_family: TitleFamily, tmp_path: Path) -> Path:
    out = tmp_path / "titled"
    build_index([SAMPLE_CORPUS], out, BuildOptions(retrievers=("bm25", "titles")))
    return out


def test_the_toy_family_satisfies_the_protocol_and_joins_the_registry(titles_family) -> None:
    assert isinstance(titles_family, Family)
    assert retriever_names()[-2:] == ("titles", "hybrid")
    with pytest.raises(ValueError, match="cannot name"):
        register_family(type("Bad", (TitleFamily,), {"name": "hybrid"})())


def test_a_registered_family_is_built_loaded_searched_and_fused(titled_index: Path) -> None:
    manifest = json.loads((titled_index / "manifest.json").read_text())
    assert manifest["kinds"] == ["bm25", "titles"]
    assert manifest["families"]["titles"]["titles"] == manifest["corpus"]["passages"]
    index = Index.load(titled_index)
    assert index.retrievers() == ["bm25", "titles", "hybrid"]
    hits = index.search(["planets solar system"], k=3, retriever="titles")[0]
    assert hits and all("Planets" in h.title for h in hits)
    boosted = index.search(["planets"], k=1, retriever="titles", boost=2.0)[0]
    assert boosted[0].score == pytest.approx(2 * hits[0].score / 3)
    with pytest.raises(OdqaError, match="titles search options are boost; got depth"):
        index.search(["planets"], retriever="titles", depth=3)
    # bm25 + dense is not in this index, so the hybrid fuses what there is: bm25 + titles.
    fused = index.retriever("hybrid", fusion="linear", alpha=1.0).search_ids(["planets"], 3)[0]
    assert fused[0].tolist() == index.retriever("titles").search_ids(["planets"], 3)[0][0].tolist()


def test_the_family_schema_and_files_are_enforced_on_load(titled_index: Path) -> None:
    path = titled_index / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["families"]["titles"]["lowercase"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match=r"'titles\.lowercase' is missing"):
        Index.load(titled_index)
    manifest["families"]["titles"]["lowercase"] = True
    path.write_text(json.dumps(manifest))
    (titled_index / "titles" / TITLES).unlink()
    with pytest.raises(IndexLoadError, match=r"'titles/titles\.json' is missing"):
        Index.load(titled_index)


def test_the_cli_builds_checks_and_searches_a_registered_family(titles_family,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "cli"
    built = runner.invoke(app, ["index", str(SAMPLE_CORPUS), "--out", str(out),
                                "--retrievers", "bm25,titles"])
    assert built.exit_code == 0, built.output
    passages = json.loads((out / "manifest.json").read_text())["corpus"]["passages"]
    # the family's own row in the build summary
    assert re.search(rf"titles\s*\W\s*{passages}\b", built.output), built.output
    checked = runner.invoke(app, ["info", str(out), "--check"])
    assert checked.exit_code == 0, checked.output
    assert "titles/:" in checked.output
    found = runner.invoke(app, ["search", "solar system planets", "-i", str(out),
                                "--retriever", "titles", "--format", "trec", "-k", "2"])
    assert found.exit_code == 0, found.output
    assert found.output.count("astro-") == 2
    fused = runner.invoke(app, ["search", "solar system planets", "-i", str(out),
                                "--retriever", "hybrid", "--fuse", "titles,bm25", "-k", "2"])
    assert fused.exit_code == 0, fused.output
    wrong = runner.invoke(app, ["search", "planets", "-i", str(out), "--retriever", "titles",
                                "--threads", "2"])
    assert wrong.exit_code == 2
    assert "only --retriever bm25 uses it, not titles" in " ".join(wrong.output.split())


def test_fuse_rejects_unknown_and_missing_families(titled_index: Path) -> None:
    unknown = runner.invoke(app, ["search", "planets", "-i", str(titled_index), "--retriever",
                                  "hybrid", "--fuse", "bm25,nonsense"])
    assert unknown.exit_code == 2
    assert "unknown retriever 'nonsense'" in " ".join(unknown.output.split())
    absent = runner.invoke(app, ["search", "planets", "-i", str(titled_index), "--retriever",
                                 "hybrid", "--fuse", "bm25,dense"])
    assert absent.exit_code == 1
    assert "hybrid fuses two or more of this index's families" in " ".join(absent.output.split())
