"""The exception that makes cryptofeed renew a connection (kept free of cryptofeed imports)."""

from __future__ import annotations

__all__ = ["ResyncRequired"]


class ResyncRequired(Exception):
    """Raised out of a feed's message handling so that cryptofeed renews the connection.

    Subscribing again makes the exchange send new book snapshots: it is how books are
    recovered on exchanges that offer no snapshot of one book on demand.
    """
