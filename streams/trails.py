"""The profile page's trail on this worker (state/trail.py) in a RocksDB store of its own, `trails/`
in the data dir: the profiler records each profile it records, the page reads it.

Local and not changelogged, on purpose: it only serves people looking at a page, so it must cost
the profiler next to nothing and never a broker round trip. It survives a restart (it is on disk);
a partition move does not bring it along: the new owner's page shows the versions that worker
has recorded (and the current profile), and says how many.
"""
from __future__ import annotations

import atexit
import functools
import logging
from pathlib import Path

from rocksdict import DBCompressionType, Options, Rdict

from model.serve import Profiled
from state.trail import TrailStore
from streams.settings import Settings

log = logging.getLogger(__name__)


@functools.cache
def _open(data_dir: Path) -> TrailStore:
    # One handle per data dir and process (RocksDB locks its directory), shared by the profiler and the page.
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(4 << 20)
    options.set_compression_type(DBCompressionType.lz4())  # JSON that repeats itself from version to version
    db = Rdict(str(data_dir / "trails"), options)
    atexit.register(db.close)
    return TrailStore(db)


def trail_store(settings: Settings) -> TrailStore:
    return _open(settings.data_dir)


def record(settings: Settings, done: Profiled) -> None:
    """After the profiler recorded `done`'s profile. Never raises: the profile stands without its trail."""
    try:
        trail_store(settings).record(done.user_id, done.version, done.profile, done.recommendations)
    except Exception:  # noqa: BLE001
        log.exception("trails: recording the profile page's trail failed")
