"""Instruments: the per-symbol constants of the synthetic market, derived from the symbol name."""

from __future__ import annotations

import hashlib
import math

import attrs

__all__ = ["REFERENCE_PRICES", "Instrument", "stable_seed", "stable_unit"]

REFERENCE_PRICES: dict[str, float] = {
    "BTC": 40_000.0,
    "ETH": 2_500.0,
    "SOL": 100.0,
    "BNB": 300.0,
    "XRP": 0.6,
    "ADA": 0.5,
    "DOGE": 0.08,
    "LTC": 70.0,
    "AVAX": 35.0,
    "DOT": 7.0,
}
"""Typical prices of well-known base assets: their synthetic start price is within 5% of it."""


def stable_unit(*parts: object) -> float:
    """A number in ``[0, 1)`` derived from ``parts`` with SHA-256 (never ``hash()``).

    It is the same in every process, on every machine and every Python version.

    :param parts: values joined by ``"|"`` as text.
    :returns: a float uniformly spread over ``[0, 1)``.

    >>> stable_unit("BTC-USDT") == stable_unit("BTC-USDT")
    True
    """
    return stable_seed(*parts) / 2.0**64


def stable_seed(*parts: object) -> int:
    """A 64-bit integer derived from ``parts`` with SHA-256, used to seed ``random.Random``.

    :param parts: values joined by ``"|"`` as text.
    :returns: an integer in ``[0, 2**64)``.
    """
    text = "|".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@attrs.frozen(kw_only=True)
class Instrument:
    """The constants of one synthetic instrument.

    Prices are integers in ticks (``tick = 10 ** -price_decimals``) and sizes integers in lots
    (``lot = 10 ** -size_decimals``); events carry ``ticks / 10 ** price_decimals`` so that every
    price is the float nearest its decimal form.

    :param symbol: the instrument symbol, e.g. ``"BTC-USDT"``.
    :param price_decimals: decimals of the tick size.
    :param size_decimals: decimals of the lot size.
    :param start_ticks: the reference price at the start, in ticks.
    :param top_lots: mean size of a best bid or ask level, in lots.
    :param deep_lots: mean size of a deeper level, in lots.
    :param min_trade_lots: the smallest trade (the scale of the heavy-tailed trade sizes).
    """

    symbol: str = attrs.field(validator=attrs.validators.min_len(1))
    price_decimals: int = attrs.field(validator=attrs.validators.ge(0))
    size_decimals: int = attrs.field(validator=attrs.validators.ge(0))
    start_ticks: int = attrs.field(validator=attrs.validators.ge(16))
    top_lots: float = attrs.field(validator=attrs.validators.gt(0))
    deep_lots: float = attrs.field(validator=attrs.validators.gt(0))
    min_trade_lots: int = attrs.field(validator=attrs.validators.ge(1))

    @classmethod
    def from_symbol(cls, symbol: str) -> Instrument:
        """Derive an instrument from its symbol alone (stable across processes and versions).

        The start price is within 5% of :data:`REFERENCE_PRICES` for a well-known base asset
        (``BTC-USDT`` starts near 40,000), else log-uniform between 0.1 and 100,000; the tick is
        0.1 to 1 basis point of it and a lot is worth 0.1 to 1 quote unit.

        :param symbol: the instrument symbol.
        :returns: the instrument.

        >>> btc = Instrument.from_symbol("BTC-USDT")
        >>> btc == Instrument.from_symbol("BTC-USDT"), btc.tick_size > 0
        (True, True)
        """
        base = symbol.split("-", maxsplit=1)[0].split("/", maxsplit=1)[0]
        reference = REFERENCE_PRICES.get(base.upper())
        if reference is None:
            price = 10.0 ** (-1.0 + 6.0 * stable_unit(symbol, "price"))
        else:
            price = reference * (0.95 + 0.1 * stable_unit(symbol, "price"))
        magnitude = math.floor(math.log10(price))
        price_decimals = max(0, 4 - magnitude)
        size_decimals = min(8, max(0, magnitude + 1))
        lot_value = price / 10**size_decimals
        top_notional = 4_000.0 * (0.5 + stable_unit(symbol, "depth"))
        trade_notional = 150.0 * (0.5 + stable_unit(symbol, "trade"))
        return cls(
            symbol=symbol,
            price_decimals=price_decimals,
            size_decimals=size_decimals,
            start_ticks=max(16, round(price * 10**price_decimals)),
            top_lots=max(1.0, top_notional / lot_value),
            deep_lots=max(1.0, 2.0 * top_notional / lot_value),
            min_trade_lots=max(1, round(trade_notional / lot_value)),
        )

    @property
    def tick_size(self) -> float:
        """The price increment."""
        return 1 / 10**self.price_decimals

    @property
    def lot_size(self) -> float:
        """The size increment."""
        return 1 / 10**self.size_decimals

    @property
    def start_price(self) -> float:
        """The reference price at the start."""
        return self.start_ticks / 10**self.price_decimals
