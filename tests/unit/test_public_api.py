"""Guards the public face: everything in ``crmload.__all__`` exists, and nothing else is promised."""

from __future__ import annotations

import logging

import crmload


def test_all_names_exist() -> None:
    missing = [name for name in crmload.__all__ if not hasattr(crmload, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in crmload.__all__ if n != "__version__"]
    assert names == sorted(set(names))


def test_package_logger_is_silent_by_default() -> None:
    handlers = logging.getLogger("crmload").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_errors_share_one_root() -> None:
    for name in crmload.__all__:
        obj = getattr(crmload, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, crmload.CrmLoadError), name
