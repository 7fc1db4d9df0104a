"""One error hierarchy: every error a user can cause is an :class:`OdqaError`.

The CLI catches ``OdqaError`` at the command boundary and prints its message on one line
(exit 1). Messages say what happened, the offending value, and how to fix it.
"""

from __future__ import annotations


class OdqaError(Exception):
    """Base class of every error odqa reports to a user."""


class InputError(OdqaError):
    """Bad input data: a corpus, query, dataset or predictions file (message carries file:line)."""

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class IndexLoadError(OdqaError):
    """A missing, incomplete or incompatible index directory."""


class ModelNotAvailableError(OdqaError):
    """A model id or path that cannot be loaded (offline and not cached, wrong folder, ...)."""


class MissingDependencyError(OdqaError):
    """An optional dependency is not installed; the message names the pip command."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised from the signal handler so that clean-up runs as for Ctrl-C."""


__all__ = [
    "IndexLoadError",
    "InputError",
    "MissingDependencyError",
    "ModelNotAvailableError",
    "OdqaError",
    "Terminated",
]
