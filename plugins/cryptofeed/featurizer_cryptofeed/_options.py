"""The cryptofeed emitter's options: endpoints, trust, retries, read from run options and env."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from featurizer import ConfigError

__all__ = [
    "CA_FILE_ENV",
    "credentials_env_prefix",
    "ENDPOINT_ENV_PATTERN",
    "OPTION_PREFIX",
    "CryptofeedOptions",
    "Endpoints",
]

OPTION_PREFIX = "cryptofeed_"
"""Run options this emitter reads start with this prefix (every emitter gets the same dict)."""

ENDPOINT_ENV_PATTERN = re.compile(r"^FEATURIZER_CRYPTOFEED_([A-Z0-9_]+)_(WEBSOCKET|REST)$")
"""``FEATURIZER_CRYPTOFEED_<EXCHANGE>_WEBSOCKET`` / ``..._REST``: override an exchange's URLs."""

CA_FILE_ENV = "FEATURIZER_CRYPTOFEED_CA_FILE"
"""A PEM file of extra certificate authorities trusted for ``wss://`` connections."""

RETRIES_ENV = "FEATURIZER_CRYPTOFEED_RETRIES"


def credentials_env_prefix(exchange: str) -> str:
    """``FEATURIZER_CRYPTOFEED_<EXCHANGE>_`` (``.`` written ``_``): the API key variables' prefix.

    >>> credentials_env_prefix("crypto.com")
    'FEATURIZER_CRYPTOFEED_CRYPTO_COM_'
    """
    return f"FEATURIZER_CRYPTOFEED_{exchange.upper().replace('.', '_')}_"


CONNECT_TIMEOUT_ENV = "FEATURIZER_CRYPTOFEED_CONNECT_TIMEOUT"
TIMEOUT_ENV = "FEATURIZER_CRYPTOFEED_TIMEOUT"


def _websocket_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("wss://"):
        raise ValueError(
            f"expected a wss:// address such as 'wss://stream.binance.com:9443' (cryptofeed "
            f"2.4.1 accepts no other scheme), received {value!r}"
        )
    return value.rstrip("/")


def _rest_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(
            f"expected an http:// or https:// address such as 'https://api.binance.com', "
            f"received {value!r}"
        )
    return value.rstrip("/")


@attrs.frozen(kw_only=True)
class Endpoints:
    """Where to reach one exchange instead of its public addresses.

    :param websocket: the ``wss://`` base address of its websocket API (``None``: unchanged).
    :param rest: the ``http(s)://`` base address of its REST API (``None``: unchanged).

    >>> Endpoints(websocket="wss://127.0.0.1:9443/", rest="http://127.0.0.1:8080")
    Endpoints(websocket='wss://127.0.0.1:9443', rest='http://127.0.0.1:8080')
    """

    websocket: str | None = attrs.field(default=None, converter=_websocket_url)
    rest: str | None = attrs.field(default=None, converter=_rest_url)


def _retries(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError(f"expected an integer >= 0, or -1 for ever, received {value!r}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, str):  # from the command line or the environment
        value = _number(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, received {value!r}")
    if not math.isfinite(value) or not value > 0:
        raise ValueError(f"expected a positive, finite number of seconds, received {value!r}")
    return float(value)


def _number(text: str) -> Any:
    """An environment value as a number when it reads as one (else unchanged, for the error)."""
    try:
        return float(text)
    except ValueError:
        return text


def _timeout(value: Any) -> float:
    if value in (-1, "-1"):
        return -1.0
    return _seconds(value)


def _flag(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, received {value!r}")
    return value


def _depth_interval(value: Any) -> str:
    if value not in ("100ms", "1000ms"):
        raise ValueError(f"expected '100ms' or '1000ms', received {value!r}")
    return str(value)


def _ca_file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not os.path.isfile(value):
        raise ValueError(f"expected the path of an existing PEM file, received {value!r}")
    return os.fspath(value)


def _endpoints(value: Any) -> Mapping[str, Endpoints]:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"expected a mapping of exchange name to {{websocket: ..., rest: ...}}, received "
            f"{value!r}"
        )
    parsed: dict[str, Endpoints] = {}
    for exchange, given in value.items():
        if isinstance(given, Endpoints):
            parsed[str(exchange).upper()] = given
            continue
        if not isinstance(given, Mapping) or not set(given) <= {"websocket", "rest"}:
            raise ValueError(
                f"expected {{websocket: 'wss://...', rest: 'https://...'}} for exchange "
                f"{exchange!r}, received {given!r}"
            )
        parsed[str(exchange).upper()] = Endpoints(**given)
    return parsed


def _endpoints_from_env(env: Mapping[str, str]) -> dict[str, Endpoints]:
    urls: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        match = ENDPOINT_ENV_PATTERN.match(key)
        if match is not None and value:
            urls.setdefault(match.group(1), {})[match.group(2).lower()] = value
    found: dict[str, Endpoints] = {}
    for exchange, given in sorted(urls.items()):
        try:
            found[exchange] = Endpoints(**given)
        except ValueError as error:
            raise ConfigError(
                f"cryptofeed emitter: {error}", field=f"FEATURIZER_CRYPTOFEED_{exchange}_*"
            ) from None
    return found


def _merge_endpoints(
    low: Mapping[str, Endpoints], high: Mapping[str, Endpoints]
) -> dict[str, Endpoints]:
    merged = dict(low)
    for exchange, urls in high.items():
        below = merged.get(exchange, Endpoints())
        merged[exchange] = Endpoints(
            websocket=urls.websocket or below.websocket, rest=urls.rest or below.rest
        )
    return merged


COMMAND_LINE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("ca_file", "a PEM file of extra certificate authorities for wss://"),
    ("retries", "reconnections after a failure before giving up (-1: for ever)"),
    ("timeout", "seconds without a message before a connection is reopened (-1: never)"),
    ("connect_timeout", "seconds by which every exchange must accept a connection"),
    ("http_timeout", "seconds allowed to load an exchange's instruments"),
    ("depth_interval", "Binance's book update interval: 100ms or 1000ms"),
    ("validate", "check every event against its schema: true or false"),
    ("uvloop", "run the feed on a uvloop loop: true or false"),
)
"""The options ``--emitter-option cryptofeed_NAME=VALUE`` can set (not the endpoints, a
mapping: the environment or the run options give those)."""

_PARSERS: dict[str, Any] = {
    "endpoints": _endpoints,
    "ca_file": _ca_file,
    "retries": _retries,
    "timeout": _timeout,
    "http_timeout": _seconds,
    "connect_timeout": _timeout,
    "depth_interval": _depth_interval,
    "validate": _flag,
    "uvloop": _flag,
}


@attrs.frozen(kw_only=True)
class CryptofeedOptions:
    """How the cryptofeed emitter connects.

    :param endpoints: per exchange (upper case), addresses replacing its public ones: a
        testnet, a proxy, or the test suite's fake exchange.
    :param ca_file: a PEM file of certificate authorities trusted for ``wss://`` connections
        besides the system ones (``None``: the system's only).
    :param retries: reconnection attempts after a connection fails before the emitter gives up
        and reports a failure; ``-1`` retries for ever (cryptofeed's ``retries``).
    :param timeout: seconds without a message after which a connection is considered dead and
        reopened; ``-1`` never (cryptofeed's ``timeout``).
    :param http_timeout: seconds allowed for loading an exchange's instruments at startup.
    :param connect_timeout: seconds after :meth:`start` by which every exchange must have
        accepted a websocket connection; otherwise the emitter fails (``failure()``), so a run
        against an unreachable exchange ends with an error instead of retrying for half an
        hour; ``-1`` waits for ever.
    :param depth_interval: Binance's book update interval, ``"100ms"`` or ``"1000ms"``.
    :param validate: check every event against its data source's schema before delivering it.
    :param uvloop: run the feed on a uvloop event loop (when installed) instead of asyncio's.
    :param environ: where API keys are read from (``None``: ``os.environ`` when needed).
    """

    endpoints: Mapping[str, Endpoints] = attrs.field(factory=dict, converter=_endpoints)
    ca_file: str | None = attrs.field(default=None, converter=_ca_file)
    retries: int = attrs.field(default=10, converter=_retries)
    timeout: float = attrs.field(default=120.0, converter=_timeout)
    http_timeout: float = attrs.field(default=10.0, converter=_seconds)
    connect_timeout: float = attrs.field(default=15.0, converter=_timeout)
    depth_interval: str = attrs.field(default="100ms", converter=_depth_interval)
    validate: bool = attrs.field(default=False, converter=_flag)
    uvloop: bool = attrs.field(default=False, converter=_flag)
    environ: Mapping[str, str] | None = attrs.field(default=None, repr=False, eq=False)

    @classmethod
    def from_mapping(
        cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> CryptofeedOptions:
        """Read the options from run options and the environment.

        Run option keys are prefixed with ``cryptofeed_`` (``cryptofeed_endpoints``,
        ``cryptofeed_ca_file``, ``cryptofeed_retries``, ``cryptofeed_timeout``,
        ``cryptofeed_http_timeout``, ``cryptofeed_connect_timeout``,
        ``cryptofeed_depth_interval``, ``cryptofeed_validate``,
        ``cryptofeed_uvloop``); other keys are ignored. The environment supplies what the
        command line cannot: ``FEATURIZER_CRYPTOFEED_<EXCHANGE>_WEBSOCKET`` and
        ``FEATURIZER_CRYPTOFEED_<EXCHANGE>_REST`` (addresses), ``FEATURIZER_CRYPTOFEED_CA_FILE``,
        ``FEATURIZER_CRYPTOFEED_RETRIES``, ``FEATURIZER_CRYPTOFEED_TIMEOUT`` and
        ``FEATURIZER_CRYPTOFEED_CONNECT_TIMEOUT``. Run options win over the environment.

        :param options: the run options.
        :param environ: the environment (``os.environ`` by default).
        :returns: the options.
        :raises ConfigError: naming the option and saying what was expected.

        >>> CryptofeedOptions.from_mapping(
        ...     {"seed": 1, "cryptofeed_retries": 2},
        ...     environ={"FEATURIZER_CRYPTOFEED_BINANCE_REST": "http://127.0.0.1:8080"},
        ... ).endpoints["BINANCE"].rest
        'http://127.0.0.1:8080'
        """
        env = os.environ if environ is None else environ
        given: dict[str, tuple[str, Any]] = {}
        if env.get(CA_FILE_ENV):
            given["ca_file"] = (CA_FILE_ENV, env[CA_FILE_ENV])
        if env.get(RETRIES_ENV):
            given["retries"] = (RETRIES_ENV, env[RETRIES_ENV])
        if env.get(CONNECT_TIMEOUT_ENV):
            given["connect_timeout"] = (CONNECT_TIMEOUT_ENV, _number(env[CONNECT_TIMEOUT_ENV]))
        if env.get(TIMEOUT_ENV):
            given["timeout"] = (TIMEOUT_ENV, _number(env[TIMEOUT_ENV]))
        for key, value in options.items():
            if not key.startswith(OPTION_PREFIX) or value is None:
                continue
            name = key[len(OPTION_PREFIX) :]
            if name not in _PARSERS:
                valid = ", ".join(OPTION_PREFIX + known for known in _PARSERS)
                raise ConfigError(
                    f"unknown cryptofeed emitter option {key!r} (valid: {valid})", field=key
                )
            given[name] = (key, value)
        parsed: dict[str, Any] = {}
        for name, (origin, value) in given.items():
            try:
                parsed[name] = _PARSERS[name](value)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"cryptofeed emitter: {error}", field=origin) from None
        parsed["endpoints"] = _merge_endpoints(
            _endpoints_from_env(env), parsed.get("endpoints", {})
        )
        parsed["environ"] = environ
        return cls(**parsed)

    def credentials_for(self, exchange: str) -> dict[str, str] | None:
        """API keys of ``exchange`` from the environment, as cryptofeed's config wants them.

        Read from ``FEATURIZER_CRYPTOFEED_<EXCHANGE>_KEY_ID`` and ``..._KEY_SECRET`` (and
        ``..._KEY_PASSPHRASE`` where the exchange uses one; a ``.`` in the exchange id is
        written ``_``). Keys are read from the environment only, never from a config file or
        run options, so they are not recorded with a run.

        :returns: ``{"key_id": ..., "key_secret": ...}``, or ``None`` when either is unset.

        >>> CryptofeedOptions(environ={"FEATURIZER_CRYPTOFEED_BIT_COM_KEY_ID": "k",
        ...                            "FEATURIZER_CRYPTOFEED_BIT_COM_KEY_SECRET": "s"}
        ...                   ).credentials_for("BIT.COM")
        {'key_id': 'k', 'key_secret': 's'}
        """
        env = os.environ if self.environ is None else self.environ
        prefix = credentials_env_prefix(exchange)
        found = {
            key: env[f"{prefix}{key.upper()}"]
            for key in ("key_id", "key_secret", "key_passphrase")
            if env.get(f"{prefix}{key.upper()}")
        }
        if "key_id" not in found or "key_secret" not in found:
            return None
        return found

    def endpoints_for(self, exchange: str) -> Endpoints:
        """The address overrides of ``exchange`` (empty when there are none)."""
        return self.endpoints.get(exchange.upper(), Endpoints())
