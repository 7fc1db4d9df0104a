"""Progress reporting for long work, without a display: the library reports into a
:class:`ProgressDisplay`, and the front end chooses how it is shown.

Library code calls :func:`make_progress`; with no display installed (odqa used as a library)
that is a :class:`NullProgress` that shows nothing. The CLI installs its rich bars with
:func:`use_display` when it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol


class ProgressDisplay(Protocol):
    """What long work reports into: tasks with a total, advanced or updated, plus fields."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> Any: ...

    def add_task(self, description: str, **fields: Any) -> Any:
        """Start a task; ``total=`` and ``completed=`` by keyword, and other ``fields`` (e.g.
        ``unit``, ``count``, ``loss``) are shown beside it."""
        ...

    def update(self, task_id: Any, **changes: Any) -> None:
        """Change a task: ``advance``, ``completed``, ``total``, ``description`` or a field."""
        ...

    def advance(self, task_id: Any, advance: float = 1) -> None:
        """Add ``advance`` to a task's completed count."""
        ...


class NullProgress:
    """A display that shows nothing (the library default, and ``enabled=False``)."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def add_task(self, description: str, **fields: Any) -> int:
        return 0

    def update(self, task_id: Any, **changes: Any) -> None:
        return None

    def advance(self, task_id: Any, advance: float = 1) -> None:
        return None


DisplayFactory = Callable[[bool], ProgressDisplay]
_display: DisplayFactory | None = None


def use_display(factory: DisplayFactory | None) -> None:
    """Install how progress is shown from now on (``None``: show nothing)."""
    global _display
    _display = factory


def make_progress(enabled: bool = True) -> ProgressDisplay:
    """A progress display for long work (shows nothing when disabled or none is installed)."""
    if _display is None or not enabled:
        return NullProgress()
    return _display(enabled)
