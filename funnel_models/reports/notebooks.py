"""Finding report notebooks and parameter files, and the parameters a notebook declares.

A notebook or parameter file given as a path is used as is. A bare name
(``monthly_report``, ``default.yaml``) is looked up first in ``./notebooks`` /
``./parameters`` of the current folder (the repository root), then in the copies shipped
inside the package (``funnel_models/templates/``), so ``funnel report`` works after a
non-editable ``pip install .`` from anywhere. The shipped copies are kept identical to the
repository's by a test.

:func:`check_declared` compares the parameters the runner will pass with the ones the
notebook declares in its cell tagged ``parameters`` (``papermill.inspect_notebook``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ParameterError
from ..params import ParameterFile, closest, load_parameter_file

__all__ = ["TEMPLATES", "NOTEBOOKS", "DEFAULT_PARAMETERS", "resolve_notebook", "resolve_parameters", "load_parameters",
           "declared_parameters", "check_declared"]

#: Templates shipped inside the package (copies of notebooks/*.ipynb and parameters/*.yaml).
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
#: Report notebooks known by name.
NOTEBOOKS = ("monthly_report", "lead_planning", "process_change", "backtest")
#: The parameter file used when none is given (the demo).
DEFAULT_PARAMETERS = "default.yaml"


def resolve_notebook(notebook: str | os.PathLike[str]) -> Path:
    """A notebook path from a path or a bare name (``./notebooks`` first, then the package)."""
    s = str(notebook)
    p = Path(s)
    if p.suffix == ".ipynb" and p.is_file():
        return p
    if p.suffix == ".py" and p.with_suffix(".ipynb").is_file():
        return p.with_suffix(".ipynb")
    name = p.stem if p.suffix in (".ipynb", ".py") else p.name
    for base in (Path.cwd() / "notebooks", TEMPLATES):
        cand = base / f"{name}.ipynb"
        if cand.is_file():
            return cand
    raise ParameterError(f"notebook {s!r} not found: looked for ./notebooks/{name}.ipynb and the package "
                         f"templates. Fix: use one of {list(NOTEBOOKS)} or the path of a .ipynb file")


def resolve_parameters(path: str | os.PathLike[str]) -> Path:
    """A parameter file from a path or a bare name (``./parameters`` first, then the package)."""
    p = Path(path)
    if p.is_file():
        return p
    if len(p.parts) == 1:
        name = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
        for base in (Path.cwd() / "parameters", TEMPLATES):
            if (base / name).is_file():
                return base / name
    if p.is_dir():
        raise ParameterError(f"{path}: is a folder, not a parameter file. Fix: pass a .yaml file")
    raise ParameterError(f"{path}: parameter file not found. Fix: check the path (bare names are looked up in "
                         "./parameters and the package templates)")


def load_parameters(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
                    ) -> tuple[Path, ParameterFile, str | None]:
    """Find a parameter file as :func:`resolve_parameters` does and load it.

    Parameters
    ----------
    path : path or bare name, optional
        The parameter file; None: :data:`DEFAULT_PARAMETERS` (the demo).
    overrides : mapping, optional
        Values layered on top of the file (:func:`funnel_models.params.load_parameter_file`).

    Returns
    -------
    (Path, ParameterFile, notebook)
        The file found, its validated parameters and its ``notebook`` key (None when absent).

    Raises
    ------
    ParameterError
        File not found, unknown key, bad value.
    """
    found = resolve_parameters(path if path is not None else DEFAULT_PARAMETERS)
    params, notebook = load_parameter_file(found, overrides)
    return found, params, notebook


def declared_parameters(notebook_path: str | Path) -> dict[str, dict[str, Any]]:
    """Parameters declared in a notebook's ``parameters`` cell (``papermill.inspect_notebook``)."""
    import papermill as pm
    nb = Path(notebook_path)
    if not nb.is_file():
        raise ParameterError(f"{nb}: notebook not found")
    try:
        return dict(pm.inspect_notebook(str(nb)))
    except Exception as exc:  # noqa: BLE001 - nbformat/papermill raise many kinds for a broken file
        raise ParameterError(f"{nb}: cannot read the notebook's parameters ({type(exc).__name__}: {exc}). Fix: "
                             "pass a valid .ipynb with a cell tagged 'parameters'") from None


def check_declared(keys: Iterable[str], notebook_path: str | Path, where: str = "parameters") -> None:
    """Every key must be a parameter the notebook declares; ParameterError otherwise."""
    declared = declared_parameters(notebook_path)
    if not declared:
        raise ParameterError(f"{notebook_path}: the notebook has no cell tagged 'parameters'")
    for k in keys:
        if k not in declared:
            near = closest(k, list(declared))
            hint = f"did you mean {near!r}?" if near else f"declared: {', '.join(sorted(declared))}"
            raise ParameterError(f"{where}: parameter {k!r} is not declared in the parameters cell of "
                                 f"{Path(notebook_path).name}; {hint}")
