"""SOAP codecs: pure functions from values to request bytes and from response bytes to values or errors."""

from __future__ import annotations

from crmload.soap.codec2007 import Codec2007, Page, WhoAmI
from crmload.soap.faults import parse_fault

__all__ = ["Codec2007", "Page", "WhoAmI", "parse_fault"]
