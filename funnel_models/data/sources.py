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
import contextlib
import csv
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import duckdb
import pandas as pd

from ..errors import FunnelDataError
from .messages import did_you_mean
from .sql import quote_ident, quote_literal

__all__ = ["Source", "OpenedSource", "open_source", "opened", "source_label", "encoding_problem",
           "translate_read_error"]

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


# ====================================================================== opening a source
@dataclass
class OpenedSource:
    """A source opened as the view ``src`` in a DuckDB connection.

    Attributes
    ----------
    label : str
        How messages name the source (the path as given, or ``<DataFrame>``).
    columns : list of str
        The user's column names, in order.
    internal : dict
        User column -> SQL expression (VARCHAR) over ``src``.
    row_note : str
        How row numbers in messages count (e.g. "1-based data rows, the header not counted").
    tmpfiles : list of str
        Temporary files (transcoded CSV) to delete once done with the view.
    path : Path or None
        The CSV file, for encoding diagnostics.
    encoding : str
        The encoding the CSV file is read in.
    """

    label: str
    columns: list[str]
    internal: dict[str, str]
    row_note: str = "1-based data rows, the header not counted"
    tmpfiles: list[str] = field(default_factory=list)
    path: Path | None = None
    encoding: str = "utf-8"


def source_label(source: Any) -> str:
    """How error messages name a source: the path as given, or ``<DataFrame>``."""
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
        raise FunnelDataError(f"{label}: is a directory, not a file. Fix: pass one CSV, Parquet or "
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


def encoding_problem(path: Path, label: str, encoding: str) -> FunnelDataError:
    """The error for a CSV file that does not decode in ``encoding``: locates the first bad
    byte (streaming the file) and names the likely encoding and the fix."""
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


def _check_binary(path: Path, label: str) -> None:
    """A file with NUL bytes in its first 64 KiB is binary (or UTF-16 without a BOM)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or b"\x00" not in head:
        return
    pos = head.index(b"\x00")
    line = head[:pos].count(b"\n") + 1
    raise FunnelDataError(
        f"{label}: the file contains NUL bytes (first at byte {pos}, line {line}): it is binary "
        "(a spreadsheet, archive or database file) or UTF-16 text without a byte-order mark, not "
        "a CSV text file. Fix: export the data as CSV (UTF-8) or Parquet; for UTF-16 text pass "
        "--encoding utf-16.")


def _transcode(path: Path, label: str, enc: str) -> str:
    """Stream ``path`` from ``enc`` into a temporary UTF-8 file; return its name."""
    fd, tmp = tempfile.mkstemp(suffix=".csv", prefix="funnel-utf8-")
    try:
        with open(path, encoding=enc, newline="") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            while True:
                block = src.read(1 << 20)
                if not block:
                    break
                dst.write(block)
    except UnicodeDecodeError:
        os.unlink(tmp)
        raise encoding_problem(path, label, enc) from None
    return tmp


def _read_header(read_path: Path, path: Path, label: str, delimiter: str, native: str) -> list[str]:
    """The first non-blank row, read with Python's csv module, checked for common mistakes."""
    py_enc = "utf-8-sig" if native == "utf-8" else native
    try:
        with open(read_path, encoding=py_enc, newline="") as fh:
            header: list[str] | None = None
            for row in csv.reader(fh, delimiter=delimiter):
                if any(c.strip() for c in row):
                    header = row
                    break
    except UnicodeDecodeError:
        raise encoding_problem(path, label, native) from None
    except csv.Error as exc:
        raise FunnelDataError(f"{label}: could not read the header row ({exc}): the first line is "
                              "not a CSV header (a huge line or an unclosed quote). Fix: export "
                              "the data as CSV with one header row of column names.") from None
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
    return header


def _open_csv(con: duckdb.DuckDBPyConnection, path: Path, label: str, delimiter: str | None,
              encoding: str | None) -> OpenedSource:
    if path.stat().st_size == 0:
        raise FunnelDataError(f"{label}: the file is empty (0 bytes). Fix: export the data again "
                              "with a header row and at least one data row.")
    enc = (encoding or "utf-8").lower().replace("_", "-")
    try:
        codecs.lookup(enc)
    except LookupError:
        raise FunnelDataError(f"{label}: unknown encoding {encoding!r}. Fix: use a Python codec "
                              "name such as utf-8, latin-1, cp1252 or utf-16.") from None
    if not enc.startswith("utf-16") and not enc.startswith("utf16"):
        _check_binary(path, label)
    tmpfiles: list[str] = []
    read_path = path
    native = _NATIVE_ENCODINGS.get(enc)
    if native is None:
        tmpfiles.append(_transcode(path, label, enc))
        read_path, native = Path(tmpfiles[0]), "utf-8"
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    delimiter = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter)
    if len(delimiter) != 1:
        raise FunnelDataError(f"{label}: the delimiter must be one character, got {delimiter!r}.")
    try:
        header = _read_header(read_path, path, label, delimiter, native)
    except FunnelDataError:
        for f in tmpfiles:
            os.unlink(f)
        raise
    cols = "{" + ", ".join(f"{quote_literal(f'c{i}')}: 'VARCHAR'" for i in range(len(header))) + "}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM read_csv({quote_literal(str(read_path))}, "
        f"auto_detect=false, header=true, delim={quote_literal(delimiter)}, quote='\"', escape='\"', "
        f"columns={cols}, encoding={quote_literal(native)})")
    return OpenedSource(label, header, {h: quote_ident(f"c{i}") for i, h in enumerate(header)},
                        tmpfiles=tmpfiles, path=path, encoding=native if not tmpfiles else enc)


def _open_parquet(con: duckdb.DuckDBPyConnection, path: Path, label: str) -> OpenedSource:
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM read_parquet({quote_literal(str(path))})")
        desc = con.execute("DESCRIBE src").fetchall()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise FunnelDataError(f"{label}: not a readable Parquet file ({first}). The file is corrupt "
                              "or truncated, or not Parquet at all. Fix: export it again; if it "
                              "is a CSV file, give it a .csv extension.") from None
    cols = [d[0] for d in desc]
    return OpenedSource(label, cols, {c: f"CAST({quote_ident(c)} AS VARCHAR)" for c in cols}, row_note="1-based rows in file order")


def _open_duckdb(con: duckdb.DuckDBPyConnection, path: Path, table: str, label: str) -> OpenedSource:
    _check_path(path, f"{path} (DuckDB database of {label})")
    try:
        con.execute(f"ATTACH {quote_literal(str(path))} AS srcdb (READ_ONLY)")
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
                              f"{names or 'none'}.{did_you_mean(table, names)} Fix: write the source "
                              f"as {path}::TABLE with one of those tables.")
    s, t = found[0]
    con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM srcdb.{quote_ident(s)}.{quote_ident(t)}")
    cols = [d[0] for d in con.execute("DESCRIBE src").fetchall()]
    return OpenedSource(label, cols, {c: f"CAST({quote_ident(c)} AS VARCHAR)" for c in cols}, row_note="1-based rows in table order")


def open_source(con: duckdb.DuckDBPyConnection, source: Any, delimiter: str | None,
          encoding: str | None) -> OpenedSource:
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
    OpenedSource
        The label, columns and per-column VARCHAR expressions over ``src``. The caller
        deletes ``tmpfiles`` once done with the view.

    Raises
    ------
    FunnelDataError
        If the source cannot be opened: missing file, unsupported type, empty file, bad
        header or delimiter, undecodable text, corrupt Parquet, unknown DuckDB table.
    """
    label = source_label(source)
    if isinstance(source, pd.DataFrame):
        df = source.copy(deep=False)
        df.columns = [str(c) for c in df.columns]
        con.register("src_df", df)
        con.execute("CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM src_df")
        cols = list(df.columns)
        return OpenedSource(label, cols, {c: f"CAST({quote_ident(c)} AS VARCHAR)" for c in cols},
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


@contextlib.contextmanager
def opened(source: Any, delimiter: str | None = None,
           encoding: str | None = None) -> Iterator[tuple[duckdb.DuckDBPyConnection, OpenedSource]]:
    """Open ``source`` as the view ``src`` in a fresh in-memory DuckDB connection.

    Yields ``(connection, opened source)``; on exit the connection is closed and the
    temporary files are deleted. Raises as :func:`open_source`.
    """
    with duckdb.connect(":memory:") as con:
        inp = open_source(con, source, delimiter, encoding)
        try:
            yield con, inp
        finally:
            for f in inp.tmpfiles:
                with contextlib.suppress(OSError):
                    os.unlink(f)


def translate_read_error(exc: Exception, inp: OpenedSource) -> FunnelDataError:
    """Turn a DuckDB read error into a message naming the file, the line and the fix.

    Parameters
    ----------
    exc : Exception
        The DuckDB error raised while reading ``src``.
    inp : OpenedSource
        The source being read.

    Returns
    -------
    FunnelDataError
    """
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
    if "Maximum line size" in msg:
        return FunnelDataError(f"{inp.label}: a line is longer than DuckDB reads (2 MB){where}: the file "
                               "is not a line-by-line CSV export (or a quote is never closed, so the "
                               "rest of the file reads as one value). Fix: check that line; export the "
                               "data as CSV with one record per line.")
    if "unterminated quote" in msg:
        return FunnelDataError(f"{inp.label}: a quoted value is never closed{where}. Fix: balance the "
                               "double quotes in that row (write a quote inside a value as \"\").")
    return FunnelDataError(f"{inp.label}: could not read the data{where}: {lines[0] if lines else msg}. "
                           "Fix: export the data again as CSV (UTF-8) or Parquet.")
