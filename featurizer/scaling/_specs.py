"""The value a plugin returns from ``featurizer_register_scalers``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["ScalerSpec"]


@attrs.frozen(kw_only=True)
class ScalerSpec:
    """A scaler a plugin provides: what starts, wires, watches and stops the workers.

    :param name: registered name, used by ``--scaler NAME``.
    :param factory: ``factory(options) -> Scaler`` (see :class:`featurizer.scaling.Scaler`);
        ``options`` holds ``address`` and scaler-specific settings.
    :param default_transport: the transport it uses unless ``--transport`` says otherwise.
    :param description: one line for ``featurizer plugins``.
    :param separate_processes: its workers run in processes other than the driver's (so the
        in-process ``inproc`` transport cannot connect them: an error before anything starts).
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[a-z][a-z0-9_]*$"))
    factory: Callable[..., Any]
    default_transport: str = "inproc"
    description: str = ""
    separate_processes: bool = False
