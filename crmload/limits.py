"""Attribute limits CRM enforces on write: string length, date range, number range and decimal places.

The mock rejects a value over its limit with a CRM-shaped fault, and the loader's mapping rejects the same
row before sending (so ``--dry-run`` finds it). Both read the limits from ``Metadata``
(``EntityMeta.limits_of``): an attribute's own limits when the metadata declares them, else CRM's documented
default for its type (``DEFAULT_LIMITS``).

Sources: the CRM 4.0 WSDL carries no facets (every string is a bare ``xs:string``), so per-attribute string
lengths come from CRM's entity reference (``crmload/data/limits.json``) and everything else from CRM's
documented defaults:

- String: 100 characters (the default MaxLength of a new nvarchar attribute);
- CrmDateTime: 1753-01-01T00:00:00 .. 9999-12-31T23:59:59 (SQL Server ``datetime``), compared in UTC when the
  value carries an offset;
- CrmMoney: -922,337,203,685,477 .. 922,337,203,685,477, at most 4 decimal places;
- CrmDecimal: -100,000,000,000 .. 100,000,000,000, at most 2 decimal places (the default precision);
- CrmNumber, Picklist, Status: a 32-bit signed integer.

Example::

    >>> check("CrmMoney", DEFAULT_LIMITS["CrmMoney"], Decimal("1e28"))
    'outside the valid range -922337203685477..922337203685477'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "DEFAULT_LIMITS",
    "LIMIT_FIELDS",
    "PLATFORM_LIMITS",
    "AttrLimits",
    "check",
    "parse_crm_datetime",
]

DATE_MIN = datetime(1753, 1, 1)
DATE_MAX = datetime(9999, 12, 31, 23, 59, 59)
_YEAR_MIN, _YEAR_MAX = DATE_MIN.year, DATE_MAX.year
_UTC = timezone.utc
_ISO = re.compile(
    r"\s*(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,7}))?)?)?\s*(Z|[+-]\d\d:?\d\d)?\s*",
    re.IGNORECASE,
)
#: The optional per-attribute fields a metadata file may declare (``{"type": ..., "max_length": 160}``).
LIMIT_FIELDS = frozenset({"max_length", "min_value", "max_value", "precision"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AttrLimits:
    """What CRM accepts for one attribute; None means "no limit of that kind".

    Args:
        max_length: most characters of a String.
        min_value, max_value: the range of a number (CrmNumber, CrmDecimal, CrmMoney, CrmFloat).
        precision: most decimal places of a CrmDecimal or CrmMoney.
    """

    max_length: int | None = None
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    precision: int | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], base: AttrLimits | None = None) -> AttrLimits:
        """Build limits from a metadata table's fields over ``base``; raises ValueError on a bad field."""
        out = base or cls()
        fields: dict[str, Any] = {}
        for name in LIMIT_FIELDS & set(spec):
            raw = spec[name]
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError(f"{name} must be a number, not {raw!r}")
            if name in ("max_length", "precision"):
                if not isinstance(raw, int) or raw < 0:
                    raise ValueError(f"{name} must be a whole number >= 0, not {raw!r}")
                fields[name] = raw
            else:
                fields[name] = Decimal(str(raw))
        return cls(
            max_length=fields.get("max_length", out.max_length),
            min_value=fields.get("min_value", out.min_value),
            max_value=fields.get("max_value", out.max_value),
            precision=fields.get("precision", out.precision),
        )


_INT32 = AttrLimits(min_value=Decimal(-(2**31)), max_value=Decimal(2**31 - 1))
_MONEY_MAX = Decimal("922337203685477")
_DECIMAL_MAX = Decimal("100000000000")

#: What any attribute of a type can hold, whatever its own settings: for a column the metadata does not know
#: (typed in the header or a map file), so the loader refuses only what no attribute of that type accepts.
PLATFORM_LIMITS: Mapping[str, AttrLimits] = {
    "CrmMoney": AttrLimits(min_value=-_MONEY_MAX, max_value=_MONEY_MAX, precision=4),
    "CrmDecimal": AttrLimits(min_value=-_DECIMAL_MAX, max_value=_DECIMAL_MAX, precision=10),
    "CrmNumber": _INT32,
    "Picklist": _INT32,
    "Status": _INT32,
}

#: CRM's documented default limits by CRM type name.
DEFAULT_LIMITS: Mapping[str, AttrLimits] = {
    "String": AttrLimits(max_length=100),
    "CrmMoney": AttrLimits(min_value=-_MONEY_MAX, max_value=_MONEY_MAX, precision=4),
    "CrmDecimal": AttrLimits(min_value=-_DECIMAL_MAX, max_value=_DECIMAL_MAX, precision=2),
    "CrmNumber": _INT32,
    "Picklist": _INT32,
    "Status": _INT32,
}


def parse_crm_datetime(text: str) -> datetime | None:
    """Read an xs:dateTime (or a bare date) as CRM does; None when it is not one.

    The result is naive: converted to UTC when the text carries an offset, as written otherwise. Years out of
    ``datetime``'s range (0000, or an offset that crosses 9999-12-31) come back as ``datetime.min``/``max``
    so a range check still rejects them.
    """
    m = _ISO.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        if int(y) == 0:
            return datetime.min
        value = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    if off and off.upper() != "Z":
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        try:
            value -= sign * delta
        except OverflowError:
            return datetime.min if sign > 0 else datetime.max
    del frac  # below a second never decides the range
    return value


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(_UTC).replace(tzinfo=None)
    except OverflowError:
        return datetime.min if value.year < 2000 else datetime.max


def _too_precise(value: Decimal, places: int) -> bool:
    exp = value.as_tuple().exponent
    if not isinstance(exp, int) or -exp <= places:
        return False
    # Trailing zeros ("0.120") are not places; normalising is slower, so only when it may decide.
    exp = value.normalize().as_tuple().exponent
    return isinstance(exp, int) and -exp > places


def _length(most: int | None, text: str) -> str | None:
    # CRM (nvarchar, .NET strings) counts UTF-16 code units: a character outside the BMP counts twice. The
    # encode runs only in the band where the two counts can disagree.
    if most is None or len(text) * 2 <= most:
        return None
    units = len(text) if len(text) > most else len(text.encode("utf-16-le")) // 2
    if units <= most:
        return None
    return f"{units} characters, longer than the maximum length {most}"


def _plain(bound: Decimal | None) -> str:
    return "" if bound is None else format(bound, "f")


def _number(limits: AttrLimits, value: Decimal | int) -> str | None:
    lo, hi = limits.min_value, limits.max_value
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"outside the valid range {_plain(lo)}..{_plain(hi)}"
    if limits.precision is not None and isinstance(value, Decimal) and _too_precise(value, limits.precision):
        return f"more than {limits.precision} decimal places"
    return None


def check(crm_type: str, limits: AttrLimits | None, value: Any) -> str | None:  # noqa: PLR0911
    """Return why ``value`` breaks ``limits`` (a reason a user can act on), or None when it fits.

    ``value`` is the typed value: ``str`` for String, ``datetime`` or the sent text for CrmDateTime,
    ``int``/``Decimal``/``float`` (or anything with a ``.value``, such as ``Money``) for numbers. A None value
    (a null) always fits.
    """
    if value is None:
        return None
    if crm_type == "String":  # the common case first: one length compare
        return _length(limits.max_length, value) if limits and isinstance(value, str) else None
    if crm_type == "CrmDateTime":
        if isinstance(value, datetime) and _YEAR_MIN < value.year < _YEAR_MAX:
            return None  # no offset can carry it out of range: skip the conversion
        when = parse_crm_datetime(value) if isinstance(value, str) else value
        if not isinstance(when, datetime):
            return "not a valid date and time"
        when = _utc_naive(when)
        if not DATE_MIN <= when <= DATE_MAX:
            return "outside the valid range 1753-01-01T00:00:00..9999-12-31T23:59:59"
        return None
    if limits is None:
        return None
    number = getattr(value, "value", value)
    if isinstance(number, bool) or not isinstance(number, (int, Decimal, float)):
        return None
    if isinstance(number, float):
        number = Decimal(str(number))
    if isinstance(number, Decimal) and number.is_nan():
        return "not a number (NaN)"  # compared with a bound, a NaN raises decimal.InvalidOperation
    return _number(limits, number)
