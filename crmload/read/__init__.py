"""The read side: paging reads through the same ``CrmClient`` (``export`` to CSV, ``verify`` a load)."""

from __future__ import annotations

from crmload.read.export import Exporter, ExportSpec, ExportSummary, parse_where

__all__ = ["ExportSpec", "ExportSummary", "Exporter", "parse_where"]
