"""Reading text inputs line by line: gzip transparently, a byte-order mark dropped, and every
problem an :class:`~odqa.errors.InputError` naming the file and line.

The one home of line reading for corpora, queries, evaluation sets and training data.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from odqa.errors import InputError


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing gzip transparently."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if path.suffix == ".gz" or magic == b"\x1f\x8b":
        # GzipFile never closes a file object it was given: let it open (and close) its own.
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return raw


BOM = b"\xef\xbb\xbf"
READ_ERRORS = (OSError, EOFError, zlib.error)
"""What reading a (possibly gzip-compressed) file can raise: I/O errors and damaged gzip data."""


def read_failure(path: Path, exc: BaseException) -> InputError:
    """The one-line error for a file that cannot be read (or decompressed)."""
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        reason = str(exc) or "truncated"
        return InputError(path, None, f"cannot read file: damaged gzip data ({reason})")
    reason = getattr(exc, "strerror", None) or str(exc)
    return InputError(path, None, f"cannot read file: {reason}")


def read_bytes(path: Path) -> bytes:
    """The whole (decompressed) content of ``path``, or an InputError."""
    try:
        with open_binary(path) as handle:
            return handle.read()
    except READ_ERRORS as exc:
        raise read_failure(path, exc) from None


def positioned_lines(path: Path) -> Iterator[tuple[int, str, int]]:
    """Yield ``(line number, text, bytes of the file read so far)`` of a UTF-8 text file (a
    leading byte-order mark is dropped), raising InputError on bad bytes or a damaged file.
    For gzip files the position counts compressed bytes."""
    try:
        with open_binary(path) as handle:
            tell = (getattr(handle, "fileobj", None) or handle).tell
            for number, raw in enumerate(handle, 1):
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM) :]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        path, number, f"invalid UTF-8 at byte {exc.start}: re-encode the file"
                    ) from None
                yield number, text, tell()
    except READ_ERRORS as exc:
        raise read_failure(path, exc) from None


def decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` of a UTF-8 text file, raising InputError on bad bytes."""
    for number, text, _ in positioned_lines(path):
        yield number, text


def json_records(path: Path) -> Iterator[tuple[int, dict[str, Any], int]]:
    """Yield ``(line number, object, bytes read so far)`` for each non-blank line of a JSON
    lines file; a line that is not a JSON object is an InputError naming its line and column."""
    for number, text, position in positioned_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                path, number, f"invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise InputError(path, number, "each line must be a JSON object")
        yield number, record, position


def tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, fields)`` of a tab-separated file with CSV quoting, LF or CRLF;
    blank rows are skipped."""
    lines = positioned_lines(path)
    numbers = [0]

    def texts() -> Iterator[str]:
        for number, text, _ in lines:
            numbers[0] = number
            yield text

    reader = csv.reader(texts(), delimiter="\t")
    try:
        for row in reader:
            if row and any(f.strip() for f in row):
                yield numbers[0], row
    except csv.Error as exc:
        raise InputError(path, numbers[0], f"bad TSV quoting ({exc})") from None
