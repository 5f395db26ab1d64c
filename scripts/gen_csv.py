#!/usr/bin/env python3
"""Generate an N-row accounts or contacts CSV for benchmarks and examples, streaming (flat memory at any N).

Rows are deterministic for a seed. Accounts carry their source key in ``accountnumber`` (A-000001, ...), a
real attribute, so ``--key accountnumber`` both stores it and derives the id; contacts carry ``contact_key``
and an ``account_key`` that points at one of the first ``--accounts`` accounts
(``examples/contacts.map.toml``).

    python scripts/gen_csv.py 1000000 /tmp/accounts-1m.csv
    python scripts/gen_csv.py 200000 /tmp/contacts.csv --entity contact --accounts 1000000
    python scripts/gen_csv.py 500 examples/accounts.csv --messy     # the example file's realistic mess
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator

ACCOUNT_COLUMNS = [
    "accountnumber",
    "name",
    "telephone1",
    "emailaddress1",
    "address1_line1",
    "address1_city",
    "address1_postalcode",
    "address1_country",
    "revenue",
    "numberofemployees",
    "industrycode",
    "creditonhold",
    "lastusedincampaign",
    "description",
]
CONTACT_COLUMNS = [
    "contact_key",
    "account_key",
    "firstname",
    "lastname",
    "emailaddress1",
    "telephone1",
    "jobtitle",
    "birthdate",
    "gendercode",
    "address1_city",
]
_WORDS = [
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Adventure",
    "Tailspin",
    "Litware",
    "Proseware",
    "Wingtip",
    "Coho",
    "Alpine",
    "Blue Yonder",
    "Fourth Coffee",
    "Humongous",
    "Lucerne",
    "Margie's",
    "Wide World",
]
_SUFFIX = ["Ltd", "GmbH", "S.A.", "Inc.", "AG", "Oy", "plc", "S.p.A.", "K.K.", "Pty"]
_CITIES = [
    ("Paris", "France"),
    ("Zürich", "Switzerland"),
    ("München", "Germany"),
    ("Kraków", "Poland"),
    ("São Paulo", "Brazil"),
    ("Montréal", "Canada"),
    ("Seattle", "USA"),
    ("København", "Denmark"),
    ("東京", "Japan"),
    ("Reykjavík", "Iceland"),
    ("Málaga", "Spain"),
    ("Łódź", "Poland"),
]
_FIRST = [
    "Anna",
    "José",
    "Zoë",
    "Łukasz",
    "Chloé",
    "Björn",
    "Siobhán",
    "Mei",
    "Ömer",
    "Nuño",
    "Jean-Luc",
    "Ada",
]
_LAST = [
    "Müller",
    "García",
    "O'Brien",
    "Nguyễn",
    "Dupont",
    "Søndergaard",
    "Kowalski",
    "Smith",
    "Tanaka",
    "Ngata",
]
_TITLES = ["CFO", "Buyer", "Head of IT", "VP, Sales", "Office manager", "Engineer"]


def accounts(n: int, rng: random.Random, messy: bool) -> Iterator[list[str]]:
    """Yield ``n`` account rows."""
    for i in range(1, n + 1):
        city, country = rng.choice(_CITIES)
        name = f"{rng.choice(_WORDS)} {rng.choice(_SUFFIX)}"
        revenue = f"{rng.randrange(10_000, 90_000_000) / 100:.2f}"
        date = f"20{rng.randrange(10, 25):02d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        desc = ""
        if messy:
            kind = i % 25
            if kind == 1:
                name = f'"{name}", {city} branch'  # quoted commas and quotes
            elif kind == 2:
                revenue = ""  # empty revenue -> null
            elif kind == 3:
                revenue = f"${int(float(revenue)):,}.00"  # currency sign and thousands separators
            elif kind == 4:
                date = date + "T09:30:00+02:00"  # a date with a time and an offset
            elif kind == 5:
                desc = "Line one\r\nline two, with <b>markup</b> & an ampersand"  # CRLF inside a quoted field
            elif kind == 6:
                name = f"  {name}  "  # stray spaces, trimmed
            elif kind == 7:
                date = ""  # no date
        yield [
            f"A-{i:06d}",
            name,
            f"+{rng.randrange(10**10, 10**11)}",
            f"info{i}@example.com",
            f"{rng.randrange(1, 300)} {rng.choice(_LAST)} Street",
            city,
            f"{rng.randrange(10000, 99999)}",
            country,
            revenue,
            str(rng.randrange(1, 50000)),
            str(rng.randrange(1, 34)),
            rng.choice(["true", "false", "yes", "no", "0", "1"]),
            date,
            desc,
        ]


def contacts(n: int, rng: random.Random, n_accounts: int) -> Iterator[list[str]]:
    """Yield ``n`` contact rows pointing at accounts A-000001..A-<n_accounts>."""
    for i in range(1, n + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        birth = f"{rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/19{rng.randrange(40, 100)}"
        yield [
            f"C-{i:06d}",
            f"A-{rng.randrange(1, n_accounts + 1):06d}",
            first,
            last,
            f"{first.lower()}.{i}@example.com",
            f"+{rng.randrange(10**10, 10**11)}",
            rng.choice(_TITLES),
            birth,
            rng.choice(["Male", "Female", ""]),
            rng.choice(_CITIES)[0],
        ]


def main(argv: list[str] | None = None) -> int:
    """Write the CSV; return 0."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", type=int)
    ap.add_argument("out", help="output path, or - for stdout")
    ap.add_argument("--entity", choices=("account", "contact"), default="account")
    ap.add_argument("--accounts", type=int, default=500, help="contacts point at accounts 1..N")
    ap.add_argument("--messy", action="store_true", help="add realistic mess that still loads")
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="")  # noqa: SIM115
    try:
        w = csv.writer(out, lineterminator="\n")
        if args.entity == "account":
            w.writerow(ACCOUNT_COLUMNS)
            w.writerows(accounts(args.rows, rng, args.messy))
        else:
            w.writerow(CONTACT_COLUMNS)
            w.writerows(contacts(args.rows, rng, args.accounts))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
