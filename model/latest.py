"""`checkpoints/LATEST`: which version directory a worker serves. No torch here, so a worker that
serves the baseline (and the CLI) can read it without loading the model stack.

A version is a plain directory name inside the checkpoints root, never a path: LATEST is written
by the trainer but lives on a shared volume, and a LATEST naming `../../etc` must not be followed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

LATEST = "LATEST"
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing files, corrupt weights, incompatible config, bad name."""


def check_version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise CheckpointError(f"LATEST names {version[:80]!r}, which is not a version directory name "
                              "(letters, digits, '.', '_', '-'; no paths)")
    return version


def latest_version(root: Path) -> Optional[str]:
    """The version LATEST names, checked to be a name inside `root`; None when there is no LATEST yet."""
    try:
        version = (Path(root) / LATEST).read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None
    return check_version(version) if version else None


def point_latest(root: Path, version: str) -> None:
    """Move LATEST to `version` atomically (rename): readers never see half a name."""
    check_version(version)
    tmp = Path(root) / f".{LATEST}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, Path(root) / LATEST)
