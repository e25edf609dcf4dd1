"""Publishing report folders so that a kill at any moment leaves ``latest`` on a complete report.

Layout of ``<output_dir>/<report>/``::

    .r-<date>-<token>/      complete report versions; written once, never renamed again
    <date> -> .r-<date>-<token>      symlink: the current version of that date
    latest -> <date>                 symlink: the newest published date
    <date>.failed/          the notebook (with its error) of the last failed run of that date
    .tmp-<date>-<pid>-<token>/       a run in progress
    .lock                   held (``flock``) while publishing or cleaning up

:func:`publish` moves a complete staged folder into place in steps that are each one
atomic rename: (1) the staged folder becomes a version ``.r-<date>-<token>``; (2) a new
symlink replaces ``<date>``; (3) a new symlink replaces ``latest``; (4) versions no longer
linked are deleted. A kill between any two steps leaves ``<date>`` and ``latest`` on the
previous complete version or on the new one, never on a missing or half-written folder.
:func:`recover` (run at the start of every publish) finishes what a killed run left:
temporary folders of dead processes are removed, a date left without its link (or the
``.old-*`` folder of an earlier release's interrupted same-date rerun) is linked to its
newest complete version, a dangling ``latest`` is pointed at the newest date, and
unlinked versions are deleted.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

__all__ = ["publish", "publish_failed", "recover", "report_lock", "staging_folder", "current"]

_VERSION = re.compile(r"^\.r-(\d{4}-\d{2}-\d{2})-")
_OLD = re.compile(r"^\.old-(\d{4}-\d{2}-\d{2})-")


def _token() -> str:
    """Sortable by creation time, unique across processes."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def report_lock(folder: Path) -> Iterator[None]:
    """Hold the report folder's lock (blocking) while publishing or cleaning up."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def staging_folder(folder: Path, date: str) -> Path:
    """A new, empty, uniquely named temporary folder for a run (``.tmp-<date>-<pid>-<token>``)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{date}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _link(path: Path, target: str) -> None:
    """Point symlink ``path`` at ``target`` in one atomic rename."""
    tmp = path.with_name(f".link-{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_tmp(d: Path) -> bool:
    try:
        pid = int(d.name.split("-")[-2])
    except (ValueError, IndexError):
        return True
    return pid != os.getpid() and not _pid_alive(pid)


def current(folder: Path, date: str) -> Path | None:
    """The complete version ``<date>`` points at (None when it does not resolve)."""
    p = folder / date
    return p.resolve() if p.is_symlink() and p.resolve().is_dir() else (p if p.is_dir() else None)


def _versions(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for d in folder.iterdir():
        m = _VERSION.match(d.name)
        if m and d.is_dir() and not d.is_symlink():
            out.setdefault(m.group(1), []).append(d)
    return {k: sorted(v) for k, v in out.items()}


def _adopt_old(folder: Path) -> None:
    """Folders an earlier release left as ``.old-<date>-*`` (a killed same-date rerun): keep
    the newest as a version when its date has no report, delete the rest."""
    for d in sorted(folder.glob(".old-*")):
        m = _OLD.match(d.name)
        if m and d.is_dir() and current(folder, m.group(1)) is None:
            os.replace(d, folder / f".r-{m.group(1)}-{_token()}")
        else:
            shutil.rmtree(d, ignore_errors=True)


def recover(folder: Path) -> None:
    """Finish or clean up what killed runs left in a report folder (call under :func:`report_lock`)."""
    if not folder.is_dir():
        return
    for d in folder.glob(".tmp-*"):
        if _dead_tmp(d):
            shutil.rmtree(d, ignore_errors=True)
    for d in folder.glob(".link-*"):
        d.unlink(missing_ok=True)
    _adopt_old(folder)
    versions = _versions(folder)
    for date, vs in versions.items():
        if current(folder, date) is None:
            if (folder / date).is_symlink():
                (folder / date).unlink()
            _link(folder / date, vs[-1].name)
    latest = folder / "latest"
    if latest.is_symlink() and not latest.resolve().is_dir():
        dates = sorted(d for d in versions if current(folder, d) is not None)
        if dates:
            _link(latest, dates[-1])
    _collect(folder)


def _collect(folder: Path) -> None:
    """Delete versions that no ``<date>`` link points at."""
    for date, vs in _versions(folder).items():
        keep = current(folder, date)
        for v in vs:
            if keep is None or v.resolve() != keep:
                shutil.rmtree(v, ignore_errors=True)


def publish(folder: Path, staged: Path, date: str) -> Path:
    """Publish the complete folder ``staged`` as ``<folder>/<date>`` and point ``latest`` at it.

    Returns ``<folder>/<date>``.
    """
    with report_lock(folder):
        recover(folder)
        dated = folder / date
        if dated.is_dir() and not dated.is_symlink():                   # an earlier release's real folder
            os.replace(dated, folder / f".r-{date}-{_token()}")
        version = folder / f".r-{date}-{_token()}"
        os.replace(staged, version)                                      # (1)
        _link(dated, version.name)                                       # (2)
        _link(folder / "latest", date)                                   # (3)
        _collect(folder)                                                 # (4)
    return dated


def publish_failed(folder: Path, staged: Path, date: str) -> Path:
    """Keep the folder of a failed run as ``<folder>/<date>.failed`` (replacing an older one)."""
    target = folder / f"{date}.failed"
    with report_lock(folder):
        if target.exists():
            old = folder / f".tmp-failed-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staged, target)
    return target
