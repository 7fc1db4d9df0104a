"""The library API: every public name resolves from ``odqa``, ``import odqa`` stays light, and the
benchmarks use nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys

import odqa

from conftest import REPO


def test_every_public_name_resolves() -> None:
    for name in odqa.PUBLIC_API:
        assert getattr(odqa, name) is not None, name
    assert set(odqa.PUBLIC_API) <= set(odqa.__all__) and "load_index" in odqa.__all__


def test_import_odqa_loads_no_submodule() -> None:
    code = "import sys, odqa; print(sorted(m for m in sys.modules if m.startswith('odqa.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_benchmarks_import_only_the_public_api() -> None:
    found = []
    for path in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("odqa"):
                if node.module not in ("odqa", "odqa.cli"):
                    found.append(f"{path.name}: {node.module}")
                elif node.module == "odqa":
                    found += [f"{path.name}: {a.name}" for a in node.names
                              if a.name not in odqa.__all__]  # fmt: skip
    assert found == []


def test_lower_layers_do_not_import_upper_ones() -> None:
    """io, encoders and runtime sit under index and retrieval: no import goes upward."""
    upper = ("odqa.index", "odqa.retrieval", "odqa.answering", "odqa.cli", "odqa.evaluation")
    found = []
    for layer in ("io", "encoders", "runtime"):
        for path in sorted((REPO / "odqa" / layer).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                found += [f"{layer}/{path.name}: {n}" for n in names if n.startswith(upper)]
    assert found == []
