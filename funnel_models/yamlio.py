"""Reading YAML files safely: one loader for funnel specs and parameter files.

Every YAML file the toolkit reads goes through :func:`read_yaml`, which

- reads at most :data:`MAX_YAML_BYTES` bytes (a parameter file or spec is a few KiB),
- decodes UTF-8 strictly (a binary or Latin-1 file is an error naming the file),
- uses PyYAML's safe loader (no Python objects),
- rejects duplicate keys in a mapping (YAML silently keeps the last one), and
- limits aliases: at most :data:`MAX_ALIASES` alias uses, so a small "billion laughs" file
  cannot expand into gigabytes.

Every problem raises the error type the caller passes (``SpecError`` for specs,
``ParameterError`` for parameter files), with the file name and the fix.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.yaml"
>>> _ = p.write_text("a: 1\\nb: [x, y]\\n")
>>> read_yaml(p, ValueError)
{'a': 1, 'b': ['x', 'y']}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["read_yaml", "MAX_YAML_BYTES", "MAX_ALIASES"]

#: Largest YAML file read (bytes).
MAX_YAML_BYTES = 1_000_000
#: Largest number of alias uses (``*name``) in one file.
MAX_ALIASES = 100


class _Loader(yaml.SafeLoader):
    """Safe loader that rejects duplicate keys and counts aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases_used = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            self.aliases_used += 1
            if self.aliases_used > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name) at line {mark.line + 1}: "
                                     "aliases are limited so a small file cannot expand without bound. "
                                     "Fix: write the values out instead of repeating aliases")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:  # noqa: D102
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.YAMLError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                                     f"(first at line {seen[key]}): YAML would silently keep only the "
                                     "last value. Fix: remove one of them")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, error: type[Exception], *, what: str = "YAML file") -> Any:
    """Parse a YAML file with the limits of this module.

    Parameters
    ----------
    path : path-like
        The file.
    error : exception type
        Raised (with the file name and the fix) for every problem.
    what : str
        How to call the file in messages, e.g. ``"parameter file"``.

    Returns
    -------
    object
        The parsed document (``None`` for an empty file).
    """
    p = Path(path)
    if p.is_dir():
        raise error(f"{p}: is a folder, not a {what}. Fix: pass the path of a .yaml file")
    if not p.is_file():
        raise error(f"{p}: {what} not found. Fix: check the path and the file name")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error(f"{p}: cannot read the {what}: {exc.strerror or exc}. Fix: check the file's "
                    "permissions") from None
    if len(raw) > MAX_YAML_BYTES:
        raise error(f"{p}: the {what} is larger than {MAX_YAML_BYTES:,} bytes; a {what} holds a few "
                    "settings. Fix: check that this is the right file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: the {what} is not UTF-8 text (byte {exc.start}). Fix: save it as UTF-8") from None
    if "\x00" in text:
        raise error(f"{p}: the {what} contains NUL bytes; it looks binary, not YAML. Fix: pass the "
                    f"{what} (a text file), not a binary file")
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        fix = "" if "Fix:" in str(exc) else (". Fix: correct the file at that line (indentation, a "
                                             "missing ':' or an unclosed bracket or quote)")
        raise error(f"{p}: not valid YAML: {exc}{fix}") from None
    except RecursionError:
        raise error(f"{p}: the {what} nests too deeply to be read. Fix: flatten the nesting") from None
