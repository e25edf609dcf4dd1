"""Open a data source (CSV, Parquet, DuckDB table or DataFrame) as a DuckDB view.

This is the first step of :mod:`funnel_models.data.readers`: it turns whatever the user passed
as ``source`` into the view ``src`` in a DuckDB connection, every column as VARCHAR, and
reports problems with the file itself (missing, empty, wrong encoding, wrong delimiter,
bad header, corrupt Parquet, unknown DuckDB table) as
:class:`~funnel_models.errors.FunnelDataError`. Checking the *contents* (columns, dates,
stage codes) is the readers' job.

Sources
-------
``source`` is one of

* a path to a CSV file (``.csv``, ``.txt``; ``.tsv``/``.tab`` default to a tab delimiter),
* a path to a Parquet file (``.parquet``, ``.pq``),
* ``"path/to/file.duckdb::table_name"`` -- a table (or view) in a DuckDB database file,
  opened read-only (``schema.table`` is accepted after the ``::``),
* a :class:`pandas.DataFrame` (rows are numbered by position, 1-based).

CSV files are read with every column as VARCHAR; the header is read with Python's
:mod:`csv` module. Encodings DuckDB cannot read natively are transcoded (streaming) to a
temporary UTF-8 file, listed in the opened input's ``tmpfiles`` for the caller to delete.
"""
from __future__ import annotations

import codecs
import csv
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import duckdb
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["Source", "translate_read_error"]

Source = Union[str, "os.PathLike[str]", pd.DataFrame]
"""What ``source`` may be.

A path (``str`` or :class:`os.PathLike`) to a CSV or Parquet file, the string
``"file.duckdb::table"`` for a table in a DuckDB database, or a
:class:`pandas.DataFrame`. See the module docstring for the details.
"""

_CSV_EXT = {".csv", ".txt", ".tsv", ".tab"}
_PARQUET_EXT = {".parquet", ".pq", ".parq"}
_DUCKDB_EXT = {".duckdb", ".db", ".ddb"}
# DuckDB reads these encodings natively; any other Python codec is transcoded first.
_NATIVE_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16",
                     "utf16": "utf-16", "latin-1": "latin-1", "latin1": "latin-1",
                     "iso-8859-1": "latin-1", "iso8859-1": "latin-1"}


# ====================================================================== SQL and message helpers
# (also used by funnel_models.data.readers)
def _q(name: str) -> str:
    """Quote a SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _lit(value: str) -> str:
    """Quote a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _closest(name: str, options: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the option closest to ``name``, or ``""``."""
    opts = [str(o) for o in options]
    close = difflib.get_close_matches(name, opts, n=1, cutoff=0.5)
    if not close:
        lower = {o.lower(): o for o in opts}
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)]
    return f" Did you mean {close[0]!r}?" if close else ""


# ====================================================================== opening a source
@dataclass
class _Input:
    """A source opened as the view ``src`` in a DuckDB connection."""

    label: str                      # how messages name the source
    columns: list[str]              # the user's column names, in order
    internal: dict[str, str]        # user column -> SQL expression (VARCHAR) over src
    row_note: str = "1-based data rows, the header not counted"
    tmpfiles: list[str] = field(default_factory=list)
    path: Path | None = None        # the CSV file, for encoding diagnostics
    encoding: str = "utf-8"


def _source_label(source: Any) -> str:
    """How error messages name a source."""
    if isinstance(source, pd.DataFrame):
        return "<DataFrame>"
    return str(source)


def _split_duckdb(source: str) -> tuple[str, str] | None:
    if "::" in source:
        path, _, table = source.rpartition("::")
        return path, table
    return None


def _check_path(path: Path, label: str) -> None:
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir()
                        if p.suffix.lower() in _CSV_EXT | _PARQUET_EXT | _DUCKDB_EXT)[:10]
        hint = f" Data files in it: {inside}." if inside else ""
        raise FunnelDataError(f"{label}: is a directory, not a file. Pass one CSV, Parquet or "
                              f"DuckDB file, e.g. {path / 'leads.csv'}.{hint}")
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        hint = ""
        if parent.is_dir():
            near = difflib.get_close_matches(path.name, [p.name for p in parent.iterdir()], n=3, cutoff=0.6)
            if near:
                hint = f" Similar files in {parent}: {near}."
        elif str(path.parent) not in ("", "."):
            hint = f" The directory {parent} does not exist either."
        raise FunnelDataError(f"{label}: file not found (current directory: {os.getcwd()}).{hint} "
                              "Fix: check the path and the file name.")


def _encoding_problem(path: Path, label: str, encoding: str) -> FunnelDataError:
    """Locate the first byte that does not decode and build the message (streams the file)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return FunnelDataError(f"{label}: the file is UTF-16 encoded, not {encoding}. Fix: pass "
                               "encoding='utf-16' (CLI: --encoding utf-16) or save it as UTF-8.")
    dec = codecs.getincrementaldecoder(encoding if encoding != "utf-8" else "utf-8")()
    line, offset, bad = 1, 0, None
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as exc:
                pos = exc.start
                line += chunk[:pos].count(b"\n")
                bad = chunk[pos:pos + 1]
                offset += pos
                snippet = chunk[max(0, pos - 20):pos + 20]
                break
            line += chunk.count(b"\n")
            offset += len(chunk)
    if bad is None:
        return FunnelDataError(f"{label}: could not decode the file as {encoding}. Fix: save it as "
                               "UTF-8, or pass the right encoding= (CLI: --encoding).")
    guess = "cp1252" if 0x80 <= bad[0] <= 0x9F else "latin-1"
    shown = snippet.decode(guess, errors="replace").replace("\n", "\\n")
    return FunnelDataError(
        f"{label}: the file is not valid {encoding.upper()}: byte 0x{bad[0]:02X} at line {line} "
        f"(data row {line - 1}) does not decode; read as {guess} it says ...{shown}... . It looks "
        f"like a {'Windows-1252' if guess == 'cp1252' else 'Latin-1 (ISO-8859-1)'} export. Fix: "
        f"pass encoding='{guess}' (CLI: --encoding {guess}), or convert the file to UTF-8, e.g. "
        f"iconv -f {'CP1252' if guess == 'cp1252' else 'LATIN1'} -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix}.")


def _open_csv(con: duckdb.DuckDBPyConnection, path: Path, label: str, delimiter: str | None,
              encoding: str | None) -> _Input:
    if path.stat().st_size == 0:
        raise FunnelDataError(f"{label}: the file is empty (0 bytes). Fix: export the data again "
                              "with a header row and at least one data row.")
    enc = (encoding or "utf-8").lower().replace("_", "-")
    try:
        codecs.lookup(enc)
    except LookupError:
        raise FunnelDataError(f"{label}: unknown encoding {encoding!r}. Fix: use a Python codec "
                              "name such as utf-8, latin-1, cp1252 or utf-16.") from None
    tmpfiles: list[str] = []
    read_path = path
    native = _NATIVE_ENCODINGS.get(enc)
    if native is None:  # transcode (streaming) to a temporary UTF-8 file
        fd, tmp = tempfile.mkstemp(suffix=".csv", prefix="funnel-utf8-")
        tmpfiles.append(tmp)
        try:
            with open(path, encoding=enc, newline="") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    dst.write(block)
        except UnicodeDecodeError:
            raise _encoding_problem(path, label, enc) from None
        read_path, native = Path(tmp), "utf-8"
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    delimiter = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter)
    if len(delimiter) != 1:
        raise FunnelDataError(f"{label}: the delimiter must be one character, got {delimiter!r}.")
    # The header, read with Python's csv module (one line only).
    py_enc = "utf-8-sig" if native == "utf-8" else native
    try:
        with open(read_path, encoding=py_enc, newline="") as fh:
            header: list[str] | None = None
            for row in csv.reader(fh, delimiter=delimiter):
                if any(c.strip() for c in row):
                    header = row
                    break
    except UnicodeDecodeError:
        raise _encoding_problem(path, label, native) from None
    except csv.Error as exc:
        raise FunnelDataError(f"{label}: could not read the header row: {exc}.") from None
    if header is None:
        raise FunnelDataError(f"{label}: the file is empty (only blank lines). Fix: export the data "
                              "again with a header row and at least one data row.")
    header = [h.strip() for h in header]
    if len(header) == 1:
        for d, name in ((";", "';'"), ("\t", "'\\t'"), ("|", "'|'"), (",", "','")):
            if d != delimiter and d in header[0]:
                cli = "$'\\t'" if d == "\t" else name
                raise FunnelDataError(
                    f"{label}: the header has a single column {header[0][:60]!r} that contains "
                    f"{name}: the file is probably {name}-delimited, not {delimiter!r}-delimited. "
                    f"Fix: use --delimiter {cli} (Python: delimiter={name}).")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise FunnelDataError(f"{label}: duplicate column name(s) {dupes} in the header. Fix: "
                              "give every column a unique name.")
    blanks = [i + 1 for i, h in enumerate(header) if not h]
    if blanks:
        raise FunnelDataError(f"{label}: header column(s) number {blanks} have no name. Fix: name "
                              "every column in the header row (or remove trailing delimiters).")
    internal = {h: f"c{i}" for i, h in enumerate(header)}
    cols = "{" + ", ".join(f"{_lit(f'c{i}')}: 'VARCHAR'" for i in range(len(header))) + "}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM read_csv({_lit(str(read_path))}, "
        f"auto_detect=false, header=true, delim={_lit(delimiter)}, quote='\"', escape='\"', "
        f"columns={cols}, encoding={_lit(native)})")
    return _Input(label, header, {h: _q(c) for h, c in internal.items()}, tmpfiles=tmpfiles,
                  path=path, encoding=native if not tmpfiles else enc)


def _open_parquet(con: duckdb.DuckDBPyConnection, path: Path, label: str) -> _Input:
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM read_parquet({_lit(str(path))})")
        desc = con.execute("DESCRIBE src").fetchall()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise FunnelDataError(f"{label}: not a readable Parquet file ({first}). The file is corrupt "
                              "or truncated, or not Parquet at all. Fix: export it again; if it "
                              "is a CSV file, give it a .csv extension.") from None
    cols = [d[0] for d in desc]
    return _Input(label, cols, {c: f"CAST({_q(c)} AS VARCHAR)" for c in cols}, row_note="1-based rows in file order")


def _open_duckdb(con: duckdb.DuckDBPyConnection, path: Path, table: str, label: str) -> _Input:
    _check_path(path, f"{path} (DuckDB database of {label})")
    try:
        con.execute(f"ATTACH {_lit(str(path))} AS srcdb (READ_ONLY)")
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise FunnelDataError(f"{label}: could not open {path} as a DuckDB database ({first}). "
                              "Fix: pass a DuckDB file as path.duckdb::table, and close other "
                              "programs that write to it.") from None
    schema, _, name = table.rpartition(".")
    rows = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name='srcdb' "
                       "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
                       "WHERE database_name='srcdb' AND NOT internal").fetchall()
    found = [(s, t) for s, t in rows if t == name and (not schema or s == schema)]
    if not found:
        names = sorted(t if s == "main" else f"{s}.{t}" for s, t in rows)
        raise FunnelDataError(f"{label}: table {table!r} does not exist in {path}. Tables there: "
                              f"{names or 'none'}.{_closest(table, names)} Fix: write the source "
                              f"as {path}::TABLE with one of those tables.")
    s, t = found[0]
    con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM srcdb.{_q(s)}.{_q(t)}")
    cols = [d[0] for d in con.execute("DESCRIBE src").fetchall()]
    return _Input(label, cols, {c: f"CAST({_q(c)} AS VARCHAR)" for c in cols}, row_note="1-based rows in table order")


def _open(con: duckdb.DuckDBPyConnection, source: Any, delimiter: str | None,
          encoding: str | None) -> _Input:
    """Open ``source`` as the temporary view ``src`` in ``con``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection the view is created in.
    source : path, ``"file.duckdb::table"`` or pandas.DataFrame
        See the module docstring.
    delimiter : str, optional
        CSV delimiter (default ``,``; a tab for ``.tsv``/``.tab``). Ignored for other sources.
    encoding : str, optional
        CSV text encoding, any Python codec name (default UTF-8). Ignored for other sources.

    Returns
    -------
    _Input
        The label, columns and per-column VARCHAR expressions over ``src``. The caller
        deletes ``tmpfiles`` once done with the view.

    Raises
    ------
    FunnelDataError
        If the source cannot be opened: missing file, unsupported type, empty file, bad
        header or delimiter, undecodable text, corrupt Parquet, unknown DuckDB table.
    """
    label = _source_label(source)
    if isinstance(source, pd.DataFrame):
        df = source.copy(deep=False)
        df.columns = [str(c) for c in df.columns]
        con.register("src_df", df)
        con.execute("CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM src_df")
        cols = list(df.columns)
        return _Input(label, cols, {c: f"CAST({_q(c)} AS VARCHAR)" for c in cols},
                      row_note="1-based row positions")
    if not isinstance(source, (str, os.PathLike)):
        raise FunnelDataError(f"source must be a file path, 'file.duckdb::table' or a DataFrame, "
                              f"got {type(source).__name__}.")
    text = os.fspath(source)
    split = _split_duckdb(text) if isinstance(text, str) else None
    if split:
        return _open_duckdb(con, Path(split[0]), split[1], label)
    path = Path(text)
    _check_path(path, label)
    ext = path.suffix.lower()
    if ext in _PARQUET_EXT:
        return _open_parquet(con, path, label)
    if ext in _DUCKDB_EXT:
        tables = []
        try:
            with duckdb.connect(str(path), read_only=True) as c2:
                tables = [r[0] for r in c2.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        except duckdb.Error:
            pass
        example = f"{path}::{tables[0] if tables else 'TABLE'}"
        raise FunnelDataError(f"{label}: a DuckDB file needs a table name: write it as {example}. "
                              f"Tables there: {tables or 'none found'}.")
    if ext in {".xlsx", ".xls", ".json", ".jsonl"}:
        raise FunnelDataError(f"{label}: {ext} files are not supported. Fix: export the sheet or "
                              "table as CSV (UTF-8) or Parquet.")
    return _open_csv(con, path, label, delimiter, encoding)


def translate_read_error(exc: Exception, inp: _Input) -> FunnelDataError:
    """Turn a DuckDB read error into a message naming the file, the line and the fix."""
    msg = str(exc)
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    line_no = None
    for ln in lines:
        if ln.startswith(("Invalid Input Error: CSV Error on Line:", "CSV Error on Line:")):
            try:
                line_no = int(ln.rsplit(":", 1)[1].strip())
            except ValueError:
                pass
    where = f" at line {line_no} (data row {line_no - 1})" if line_no else ""
    if "Invalid unicode" in msg:
        return FunnelDataError(f"{inp.label}: the file is not valid UTF-8{where}. It is probably a "
                               "Windows-1252 or Latin-1 export. Fix: pass encoding='cp1252' or "
                               "encoding='latin-1' (CLI: --encoding latin-1), or convert it to UTF-8 "
                               "(iconv -f CP1252 -t UTF-8).")
    if "Expected Number of Columns" in msg:
        detail = next((ln for ln in lines if ln.startswith("Expected Number")), "")
        original = next((ln for ln in lines if ln.startswith("Original Line:")), "")
        return FunnelDataError(f"{inp.label}: a row has the wrong number of fields{where}: {detail} "
                               f"({original[:120]}). Fix: quote values that contain the delimiter "
                               "(\"a,b\"), or pass the right --delimiter.")
    if "unterminated quote" in msg:
        return FunnelDataError(f"{inp.label}: a quoted value is never closed{where}. Fix: balance the "
                               "double quotes in that row (write a quote inside a value as \"\").")
    return FunnelDataError(f"{inp.label}: could not read the data{where}: {lines[0] if lines else msg}")
