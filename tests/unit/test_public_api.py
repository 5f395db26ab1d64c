"""Guards the public face: everything in ``crmload.__all__`` exists, and nothing else is promised."""

from __future__ import annotations

import logging

import crmload


def test_all_names_exist() -> None:
    missing = [name for name in crmload.__all__ if not hasattr(crmload, name)]
    assert missing == []


def test_all_is_unique() -> None:
    assert len(crmload.__all__) == len(set(crmload.__all__))


def test_public_names_are_the_promised_ones() -> None:
    # The names migration scripts import; removing one is a breaking change.
    promised = {"CrmClient", "Loader", "RateLimit", "PortBudget", "RetryPolicy", "Timeout", "Money", "Lookup"}
    promised |= {"Ntlm", "Bearer", "CrmLoadError", "ConnectError", "ResponseLostError", "load_metadata"}
    assert promised <= set(crmload.__all__)


def test_package_logger_is_silent_by_default() -> None:
    handlers = logging.getLogger("crmload").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_errors_share_one_root() -> None:
    for name in crmload.__all__:
        obj = getattr(crmload, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, crmload.CrmLoadError), name
