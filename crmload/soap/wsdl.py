"""A cached zeep client for the long tail of CRM operations, and the codec's test oracle.

zeep reads the WSDL once (a few seconds for CRM 4.0's 700 KB organisation-specific description) and can then
build any of its messages. The hot path does not use it: ``codec2007`` is ~50x faster per record.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from crmload.errors import ConfigError

__all__ = ["load_client"]


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Any:
    import zeep  # noqa: PLC0415  (lazy: only the long tail and the tests pay for it)
    from zeep.transports import Transport  # noqa: PLC0415

    class _NoNetwork(Transport):
        """A transport that refuses to fetch anything, so loading a WSDL never touches the network."""

        def load(self, url: str) -> bytes:
            if os.path.exists(url):
                with open(url, "rb") as fh:
                    return fh.read()
            raise ConfigError(f"zeep tried to fetch {url[:100]!r}; only local WSDL files are loaded")

    settings = zeep.Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True)
    return zeep.Client(path, settings=settings, transport=_NoNetwork())  # type: ignore[no-untyped-call]


def load_client(wsdl_path: str | os.PathLike[str]) -> Any:
    """Return a zeep ``Client`` for a local WSDL file, cached per path; ConfigError if it cannot be read."""
    path = os.path.abspath(os.fspath(wsdl_path))
    if not os.path.isfile(path):
        raise ConfigError(f"WSDL not found: {path}")
    try:
        return _load(path)
    except ConfigError:
        raise
    except Exception as exc:  # zeep raises a zoo of its own and lxml's errors
        raise ConfigError(f"cannot load WSDL {path}: {type(exc).__name__}: {str(exc)[:200]}") from exc
