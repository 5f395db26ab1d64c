"""A cached zeep client for the long tail of CRM operations, and the codec's test oracle.

zeep reads the WSDL once (a few seconds for CRM 4.0's 700 KB organisation-specific description) and can then
build any of its messages. The hot path does not use it: ``codec2007`` is ~50x faster per record.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from lxml import etree

from crmload.errors import ConfigError

__all__ = ["load_client", "load_schema"]

_XS = "http://www.w3.org/2001/XMLSchema"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"


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


class _MemoryResolver(etree.Resolver):  # type: ignore[misc]
    """Serves the WSDL's inline schemas to libxml2 under made-up ``mem://`` locations; nothing else."""

    def __init__(self, texts: dict[str, bytes]) -> None:
        super().__init__()
        self._texts = texts

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        text = self._texts.get(url or "")
        return self.resolve_string(text, context) if text is not None else None


@functools.lru_cache(maxsize=4)
def _schema(path: str) -> etree.XMLSchema:
    safe = etree.XMLParser(resolve_entities=False, no_network=True)
    schemas = etree.parse(path, safe).getroot().findall(f"{{{_WSDL}}}types/{{{_XS}}}schema")
    where = {s.get("targetNamespace"): f"mem://schema{i}.xsd" for i, s in enumerate(schemas)}
    texts: dict[str, bytes] = {}
    for schema in schemas:
        # A standalone copy keeps the namespace declarations it inherited from <wsdl:definitions>.
        copy = etree.fromstring(etree.tostring(schema), safe)
        for imp in copy.findall(f"{{{_XS}}}import"):
            if imp.get("namespace") in where:
                imp.set("schemaLocation", where[imp.get("namespace")])
        # WCF's singleWsdl refers across its schemas without importing them; XSD requires the import.
        imported = {imp.get("namespace") for imp in copy.findall(f"{{{_XS}}}import")}
        for ns, loc in where.items():
            if ns != schema.get("targetNamespace") and ns not in imported:
                copy.insert(0, etree.Element(f"{{{_XS}}}import", namespace=ns, schemaLocation=loc))
        texts[where[schema.get("targetNamespace")]] = etree.tostring(copy)
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{loc}"/>' for ns, loc in where.items())
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(_MemoryResolver(texts))
    master = etree.fromstring(f'<xs:schema xmlns:xs="{_XS}">{imports}</xs:schema>', parser)
    return etree.XMLSchema(master)


def load_schema(wsdl_path: str | os.PathLike[str]) -> etree.XMLSchema:
    """Return an lxml XMLSchema assembled from a WSDL's inline ``<types>`` schemas, cached per path.

    Validate a message part (the element inside ``soap:Body``) with ``schema.validate(element)``; the SOAP
    envelope's own schema is not part of a WSDL.
    """
    path = os.path.abspath(os.fspath(wsdl_path))
    if not os.path.isfile(path):
        raise ConfigError(f"WSDL not found: {path}")
    try:
        return _schema(path)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as exc:
        raise ConfigError(f"cannot assemble the schemas of {path}: {str(exc)[:200]}") from exc
