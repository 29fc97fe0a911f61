"""Callbacks that the graph compiler writes into its generated dispatch code.

A graph callback is one Python call per event it observes. A callback that can say what it
does as a few Python statements (the storage recorder: copy the fields into column buffers)
carries an :class:`Inlinable` under the attribute :data:`INLINE_ATTRIBUTE`; the graph then
writes those statements where the call would be, and compiles itself again whenever the
callback's statements change (the recorder's change once, after a series' first event). A
callback that returns no statements is called as any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

__all__ = ["INLINE_ATTRIBUTE", "InlineCode", "Inlinable", "inlinable"]

INLINE_ATTRIBUTE = "featurizer_inline"
"""The attribute of a callback function holding its :class:`Inlinable`."""


@attrs.frozen(kw_only=True)
class InlineCode:
    """Statements standing for one call of a callback.

    :param lines: the statements, indented from column 0, reading the event under the name
        given to :meth:`Inlinable.inline`.
    :param namespace: every global name the statements use (already carrying the prefix given
        to :meth:`Inlinable.inline`, so several callbacks never clash).
    """

    lines: tuple[str, ...]
    namespace: Mapping[str, Any]


class Inlinable(Protocol):
    """What a callback offers the graph compiler."""

    def inline(self, event: str, prefix: str) -> InlineCode | None:
        """The statements of one call with the event named ``event``, every other name they
        use (globals and locals) starting with ``prefix``; ``None``: call the callback."""

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever :meth:`inline` would return other statements."""


def inlinable(callback: Callable[..., Any]) -> Inlinable | None:
    """The :class:`Inlinable` a callback carries, if any."""
    found: Inlinable | None = getattr(callback, INLINE_ATTRIBUTE, None)
    return found
