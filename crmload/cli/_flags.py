"""argparse ``type=`` checks for flag values that can be judged on the command line alone.

A value refused here is a usage error: argparse reports it and the CLI exits 2 before anything is opened or
sent, instead of the run failing later (exit 1) when the value is first used.
"""

from __future__ import annotations

import argparse
import codecs
import math

from crmload.errors import ConfigError

__all__ = [
    "batch_size",
    "delimiter",
    "encoding",
    "entity",
    "positive_float",
    "positive_int",
    "rate",
    "timeout",
    "url",
]


def rate(text: str) -> str:
    """A ``--rate`` value that ``RateLimit.parse`` accepts, kept as text: "16", "auto", "unlimited"."""
    from crmload.throttle import RateLimit  # noqa: PLC0415 - lazy: --help stays fast

    try:
        RateLimit.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def entity(text: str) -> str:
    """A CRM logical name such as ``account`` or ``new_project`` (an ASCII identifier)."""
    from crmload.types import is_name  # noqa: PLC0415 - lazy: --help stays fast

    if not is_name(text):
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a CRM logical name, e.g. account")
    return text


def delimiter(text: str) -> str:
    """One character; ``tab`` or ``\\t`` for a tab."""
    if text.lower() in ("tab", "\\t"):
        return "\t"
    if len(text) != 1 or text in '\r\n"':
        raise argparse.ArgumentTypeError(f"must be one character other than a quote or newline, not {text!r}")
    return text


def encoding(text: str) -> str:
    """A text encoding Python knows, e.g. ``utf-8-sig``, ``cp1252``, ``latin-1``."""
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r} (e.g. utf-8, cp1252, latin-1)") from None
    return text


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def batch_size(text: str) -> int | str:
    """``--batch-size``: ``auto`` or a whole number >= 1."""
    from crmload.load.sizing import parse_size  # noqa: PLC0415 - lazy: --help stays fast

    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    """A finite number > 0, e.g. seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


def timeout(text: str) -> object:
    """``--timeout S`` (connect and read) or ``--timeout CONNECT,READ`` in seconds -> a ``Timeout``."""
    from crmload.transport import Timeout  # noqa: PLC0415 - lazy: --help stays fast

    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected SECONDS or CONNECT,READ, not {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or CONNECT,READ, not {text!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"timeouts must be positive seconds, not {text!r}")
    connect_s, read_s = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    return Timeout(connect_s=connect_s, read_s=read_s)


def url(text: str) -> str:
    """An absolute http(s) URL with a valid host and port (what ``Transport`` will accept)."""
    from crmload.transport import check_url  # noqa: PLC0415 - lazy: --help stays fast

    try:
        check_url(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
