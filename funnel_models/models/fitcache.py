"""The on-disk fit cache: fits keyed by a hash of spec, configuration and data.

A cached file is trusted only if it opens and its stored hashes match: the key (spec,
configuration, data) and a digest of the posterior draws themselves, so a file whose
draws were changed after writing is not reused. A broken, unreadable or tampered entry is
a cache miss with a :class:`~funnel_models.errors.FunnelWarning` naming the file and the
fix, never an error and never a silent reuse. Writes go to a temporary name and are
renamed into place, so a killed fit leaves no half-written entry.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from ..errors import FunnelWarning, ModelConfigError

__all__ = ["default_cache_dir", "FitCache", "digest_arrays", "stable_hash"]

T = TypeVar("T")


def default_cache_dir() -> Path:
    """Fit cache folder: ``$FUNNEL_CACHE_DIR`` or ``~/.cache/funnel_models``."""
    return Path(os.environ.get("FUNNEL_CACHE_DIR", Path.home() / ".cache" / "funnel_models"))


def stable_hash(*parts: str) -> str:
    """A short SHA-256 of text parts."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()[:20]


def digest_arrays(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, shapes and bytes), for the draws' integrity check."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


class FitCache:
    """A folder of cached fits.

    Parameters
    ----------
    folder : path or None
        The cache folder; ``None`` disables caching.
    """

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = None if folder is None else Path(folder)

    def path(self, key: str, kind: str = "fit") -> Path | None:
        """Where the entry ``key`` lives (None when caching is off)."""
        return None if self.folder is None else self.folder / f"{kind}-{key}.nc"

    def get(self, key: str, load: Callable[[Path], T], kind: str = "fit") -> T | None:
        """The cached object, or None on a miss (a broken entry warns and counts as a miss).

        ``load`` reads the file and raises :class:`ModelConfigError` (or any error of
        the file layer) when the entry cannot be trusted.
        """
        p = self.path(key, kind)
        if p is None or not p.exists():
            return None
        try:
            return load(p)
        except (ModelConfigError, OSError, ValueError, KeyError, RuntimeError) as exc:
            warnings.warn(f"fit cache entry {p} could not be used ({type(exc).__name__}: {exc}); fitting "
                          f"again. Delete the file (or the folder {p.parent}) if this repeats.",
                          FunnelWarning, stacklevel=3)
            return None

    def put(self, key: str, save: Callable[[Path], Any], kind: str = "fit") -> Path | None:
        """Write an entry atomically with ``save(tmp_path)``; a failed write only warns."""
        p = self.path(key, kind)
        if p is None:
            return None
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            save(tmp)
            os.replace(tmp, p)
        except OSError as exc:
            warnings.warn(f"could not write the fit cache {p}: {exc.strerror or exc}; the fit is not cached "
                          "(set FUNNEL_CACHE_DIR to a writable folder)", FunnelWarning, stacklevel=3)
            return None
        finally:
            if tmp.exists():
                tmp.unlink()
        return p
