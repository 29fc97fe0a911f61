"""The per-event fallback of a kernel: the feature's own per-event code over a chunk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from featurizer import Event
from featurizer.batch import Columns, ErrorHandler, KernelOutput, columns_from_events

__all__ = ["empty_output", "per_event"]


def per_event(
    update: Callable[[Event], Event | None],
    batch: Columns,
    names: Sequence[str],
    fail: ErrorHandler,
) -> KernelOutput:
    """Run ``update`` on every row of ``batch``, as the fused per-event ``map`` does.

    :param update: the per-event function (a state's bound ``update`` or a pure function).
    :param batch: the chunk.
    :param names: the output fields, in event order.
    :param fail: called with the row, the event and the error when ``update`` raises.
    """
    rows: list[int] = []
    outputs: list[Event] = []
    for row, event in enumerate(batch.events()):
        try:
            out = update(event)
        except Exception as error:
            fail(row, event, error)
            continue
        if out is not None:
            rows.append(row)
            outputs.append(out)
    return KernelOutput(
        rows=np.array(rows, dtype=np.int64), columns=columns_from_events(outputs, names)
    )


def empty_output(names: Sequence[str]) -> KernelOutput:
    """No outputs."""
    data: dict[str, Any] = {name: np.zeros(0, dtype=np.float64) for name in names}
    return KernelOutput(rows=np.zeros(0, dtype=np.int64), columns=Columns(size=0, data=data))
