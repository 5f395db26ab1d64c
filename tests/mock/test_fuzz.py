"""Mutated real samples never crash the mock: each answer is a 200 or a parseable CRM fault; it keeps serving.

The mutations are seeded, so a failure repeats.
"""

from __future__ import annotations

import random
from pathlib import Path

from crmload.mock import MockCrm
from tests.mock.helpers import SOAP11, WS, connect, envelope, post

WHOAMI = envelope(f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>')


def _mutate(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(5)
    i, j = sorted(rng.randrange(len(data)) for _ in range(2))
    if choice == 0:
        return data[:i] + data[j:]  # cut a slice
    if choice == 1:
        return data[:i] + data[i:j] * 2 + data[j:]  # repeat a slice
    if choice == 2:
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]  # flip a byte
    if choice == 3:
        return data.replace(b"Property", b"Propertx", 1)
    return data[:i] + b"<!-- c -->" + data[i:]


def test_mutated_samples_get_answers(crm: MockCrm, shared_reference: Path) -> None:
    rng = random.Random(20240501)
    samples = sorted((shared_reference / "crm-wsdl" / "samples").glob("crm2007_*.request.xml"))
    conn = connect(crm)
    statuses: set[int] = set()
    try:
        for _ in range(200):
            sample = rng.choice(samples)
            op = sample.name.split("_")[1].split(".")[0].split("-")[0]
            op = {"create": "Create", "delete": "Delete", "execute": "Execute", "retrieve": "Retrieve"}.get(
                op, "RetrieveMultiple" if op == "retrievemultiple" else "Update"
            )
            r = post(conn, op, _mutate(rng, sample.read_bytes()))
            statuses.add(r.status)
            assert r.status in (200, 500), r.body
            if r.status == 500:
                assert r.xml.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault") is not None
                assert r.fault_code() is not None
                assert b"An unexpected error occurred" not in r.body  # the mock's own bug guard
    finally:
        conn.close()
    assert 500 in statuses
    assert crm.stats()["connections_accepted"] == 1
    assert "0x80040216" in crm.stats()["crm_faults_by_code"]
    c = connect(crm)
    try:
        assert post(c, "Execute", WHOAMI).status == 200
    finally:
        c.close()
