"""Writing output files all at once: checked first, written to a temporary name, renamed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from featurizer._errors import FeaturizerError

__all__ = ["atomic_output", "check_writable", "write_atomically"]


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, if ``path`` cannot be written.

    :param path: the output file.
    :returns: the path.
    :raises FeaturizerError: if it is a directory, or its directory is missing or read-only.
    """
    target = Path(path)
    if target.is_dir():
        raise FeaturizerError(f"cannot write {str(target)!r}: it is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FeaturizerError(
            f"cannot write {str(target)!r}: directory {str(parent)!r} does not exist"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FeaturizerError(
            f"cannot write {str(target)!r}: directory {str(parent)!r} is not writable"
        )
    return target


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place if the block succeeds.

    If the block raises, the temporary file is removed and ``path`` is left as it was.

    :param path: the final output file.
    :raises FeaturizerError: if the file cannot be written (checked before the block runs).
    """
    target = check_writable(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield temporary
        if not temporary.exists():
            raise FeaturizerError(f"nothing was written for {str(target)!r}")
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise FeaturizerError(f"cannot write {str(target)!r}: {error.strerror or error}") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write bytes, text (UTF-8) or whatever ``data(temporary_path)`` writes, all at once.

    :param path: the final output file.
    :param data: the content, or a function writing it to the path it receives.
    :returns: the final path.
    :raises FeaturizerError: if the file cannot be written; nothing is left behind.
    """
    with atomic_output(path) as temporary:
        if callable(data):
            data(temporary)
        elif isinstance(data, str):
            temporary.write_text(data, encoding="utf-8")
        else:
            temporary.write_bytes(data)
    return Path(path)
