"""Tokenisation for BM25 (lowercase, Unicode words, stopwords, stemming); answer normalisation."""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from odqa.errors import OdqaError

WORD_RE = re.compile(r"\w+", re.UNICODE)

# Lucene's / Pyserini's default English stopword set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

STOPWORD_SETS: dict[str, frozenset[str]] = {"en": ENGLISH_STOPWORDS, "none": frozenset()}
STEMMERS = ("english", "none")


@dataclass(frozen=True)
class Analyzer:
    """Turns text into index terms; stored in the manifest and applied identically to queries."""

    lowercase: bool = True
    stopwords: str = "en"
    stemmer: str = "english"
    pattern: str = WORD_RE.pattern

    def __post_init__(self) -> None:
        if self.stopwords not in STOPWORD_SETS:
            raise OdqaError(
                f"unknown stopword list '{self.stopwords}': "
                f"choose one of {', '.join(STOPWORD_SETS)}"
            )
        if self.stemmer not in STEMMERS:
            choices = ", ".join(STEMMERS)
            raise OdqaError(f"unknown stemmer '{self.stemmer}': choose one of {choices}")

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.UNICODE)

    @cached_property
    def _stopset(self) -> frozenset[str]:
        return STOPWORD_SETS[self.stopwords]

    @cached_property
    def _stem_words(self):  # -> Callable[[list[str]], list[str]] | None
        if self.stemmer == "none":
            return None
        import Stemmer

        return Stemmer.Stemmer(self.stemmer).stemWords

    @cached_property
    def _findall(self):  # -> Callable[[str], list[str]]
        return self._regex.findall

    def split(self, text: str) -> list[str]:
        """Words of ``text`` (lowercased when set), before stopword removal and stemming."""
        return self._findall(text.lower() if self.lowercase else text)

    def tokenize(self, text: str) -> list[str]:
        """Terms of ``text``: words, lowercased, stopwords removed, then stemmed."""
        words = self.split(text)
        stop = self._stopset
        if stop:
            words = [w for w in words if w not in stop]
        stem = self._stem_words
        return stem(words) if stem is not None and words else words

    def term_map(self, words: list[str]) -> dict[str, str | None]:
        """Term of each distinct word of ``words`` (None for a stopword), in first-seen order.

        A word's term never depends on its neighbours, so callers may memoise this mapping and
        stem each distinct word once instead of once per occurrence.
        """
        stop = self._stopset
        distinct = list(dict.fromkeys(words))
        kept = [w for w in distinct if w not in stop] if stop else distinct
        stem = self._stem_words
        terms = dict(zip(kept, stem(kept) if stem is not None and kept else kept))
        return {w: terms.get(w) for w in distinct}

    def tokenize_many(self, texts: list[str]) -> list[list[str]]:
        """:meth:`tokenize` over a batch."""
        return [self.tokenize(t) for t in texts]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, restored with ``Analyzer(**d)``."""
        return asdict(self)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation and articles, squash whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())

