"""A plan's state folder: its journals and ``plan.json``, the fingerprint a ``--resume`` must match.

``PLAN.toml.crmload/`` beside the plan file (``--state-dir`` elsewhere) holds one journal per load,
``NN-entity.sqlite``, one per update pass, ``NN-entity.links.sqlite``, and ``plan.json``: the target (URL
without credentials, org) and every load's settings, map file hash and input file identity. A run without
``--resume`` refuses a folder that holds a run; ``--resume`` refuses a plan that changed, naming what changed;
``--restart`` begins again (each journal is erased as its load starts).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError
from crmload.load.identity import file_identity
from crmload.load.journal import public_url
from crmload.plan.spec import Plan

__all__ = ["changes", "claim", "fingerprint", "state_dir"]

STATE_FILE = "plan.json"


def state_dir(plan: Plan, override: str | Path | None = None) -> Path:
    """Where the plan's journals live: ``override``, else ``PLAN.toml.crmload`` beside the plan."""
    return Path(override) if override else plan.path.with_name(plan.path.name + ".crmload")


def fingerprint(plan: Plan, url: str, org: str) -> dict[str, Any]:
    """What a resumed run must find unchanged."""
    loads = []
    for ld in plan.loads:
        fp: dict[str, Any] = ld.fingerprint()
        fp["input"] = asdict(file_identity(ld.file))
        loads.append(fp)
    return {"version": 1, "target": {"url": public_url(url), "org": org}, "loads": loads}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words (empty when nothing does)."""
    out = []
    for name in ("url", "org"):
        a, b = old.get("target", {}).get(name), new["target"][name]
        if a != b:
            out.append(f"target {name} changed from {a!r} to {b!r}")
    before, after = old.get("loads", []), new["loads"]
    for i, (a, b) in enumerate(zip(before, after, strict=False), 1):
        label = f"load {i} ({Path(b['file']).name})"
        for name in ("file", "entity", "key", "mode", "map", "encoding", "delimiter"):
            if a.get(name) != b.get(name):
                out.append(f"{label}: {name} changed from {a.get(name)!r} to {b.get(name)!r}")
        if a.get("map") == b.get("map") and a.get("map_sha256") != b.get("map_sha256"):
            out.append(f"{label}: map file {Path(b['map']).name} changed")
        if a.get("file") == b.get("file") and a.get("input") != b.get("input"):
            out.append(f"{label}: the input file changed")
    for i, b in enumerate(after[len(before) :], len(before) + 1):
        out.append(f"load {i} ({Path(b['file']).name}) was added")
    for i, a in enumerate(before[len(after) :], len(after) + 1):
        out.append(f"load {i} ({Path(a['file']).name}) was removed")
    return out


def claim(folder: Path, fp: dict[str, Any], *, resume: bool, restart: bool) -> bool:
    """Check the folder against this run and record ``fp``; return True when an earlier run is continued.

    Raises ConfigError when the folder holds a run and neither ``resume`` nor ``restart`` is set, or when
    ``resume`` finds a changed plan (the message lists every change).
    """
    path = folder / STATE_FILE
    old: dict[str, Any] | None = None
    if path.exists() and not restart:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}; --restart to begin again") from exc
    if old is not None and not resume:
        raise ConfigError(
            f"this plan has run before (state in {folder}); use --resume to continue, "
            "or --restart to begin again"
        )
    if old is not None:
        diff = changes(old, fp)
        if diff:
            raise ConfigError(
                f"the plan changed since its last run (state in {folder}): {'; '.join(diff)}; "
                "nothing was sent. "
                "Restore it, or --restart to begin again"
            )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(STATE_FILE + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(fp, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return old is not None
