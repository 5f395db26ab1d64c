"""The loader: streaming source -> typed mapping -> workers -> journal, rejects and a summary.

Public names (re-exported by ``crmload``): ``Loader``, ``Mapper``, ``MapSpec``, ``CsvSource``, ``Journal``,
``RejectsWriter``, ``Summary``, ``key_id``, ``entity_namespace``.
"""

from __future__ import annotations

from crmload.load.engine import MODES, Loader
from crmload.load.journal import FileIdentity, Journal, Target, file_identity
from crmload.load.keys import entity_namespace, key_id
from crmload.load.mapping import Mapped, Mapper, MapSpec
from crmload.load.progress import Progress
from crmload.load.rejects import RejectsWriter
from crmload.load.source import CsvSource, SourceRow
from crmload.load.summary import Summary

__all__ = [
    "MODES",
    "CsvSource",
    "FileIdentity",
    "Journal",
    "Loader",
    "MapSpec",
    "Mapped",
    "Mapper",
    "Progress",
    "RejectsWriter",
    "SourceRow",
    "Summary",
    "Target",
    "entity_namespace",
    "file_identity",
    "key_id",
]
