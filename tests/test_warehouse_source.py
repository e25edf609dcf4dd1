"""A stage history left in a warehouse: ``source: duckdb:///file.duckdb::table`` and Ibis tables.

The Olist history copied into a DuckDB file gives the very same fit as the CSV files (the
conjugate model is exact, so the posterior draws are identical), through ``funnel fit`` and
through the Python API; bad sources give one clear error line. The Spark test (``slow`` and
``spark``) fits the Markov model on a Spark-resident Olist copy and checks it against the CSV
fit within Monte Carlo error.
"""
from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from crm_cases import crm_spec, random_history
from funnel_models.cli import main
from funnel_models.data import derive
from funnel_models.datasets.olist import OLIST_SPEC, olist_dir, olist_stage_history
from funnel_models.errors import FunnelDataError
from funnel_models.workflow import fit_model, load_data

needs_olist = pytest.mark.skipif(not olist_dir().exists(), reason=f"Olist data not found at {olist_dir()}")


def _duckdb_file(path, frame: pd.DataFrame, table: str = "stage_history") -> str:
    con = duckdb.connect(str(path))
    con.register("frame", frame)
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
    con.close()
    return f"duckdb:///{path}::{table}"


@pytest.fixture(scope="module")
def olist_copy(tmp_path_factory):
    d = tmp_path_factory.mktemp("wh")
    spec = d / "olist.yaml"
    spec.write_text(yaml.safe_dump(OLIST_SPEC))
    return _duckdb_file(d / "olist.duckdb", olist_stage_history(olist_dir())), str(spec)


@needs_olist
def test_olist_fit_from_duckdb_equals_csv(olist_copy):
    source, spec = olist_copy
    csv, wh = load_data("olist"), load_data(source, spec=spec)
    assert wh.kind == "warehouse" and wh.cutoff == csv.cutoff and wh.n_leads() == csv.n_leads()
    a = fit_model(csv, model="conjugate", factors=["origin"], cache_dir=False)
    b = fit_model(wh, model="conjugate", factors=["origin"], cache_dir=False)
    assert a.data.fingerprint() == b.data.fingerprint()
    pd.testing.assert_frame_equal(a.data.transitions, b.data.transitions)
    pd.testing.assert_frame_equal(a.data.won_values.reset_index(drop=True), b.data.won_values, check_dtype=False)
    for seg in [None, {"origin": "organic search"}]:
        pa, pb = a.posterior_funnel(seg, draws=300, seed=3), b.posterior_funnel(seg, draws=300, seed=3)
        np.testing.assert_array_equal(pa.rates, pb.rates)
        np.testing.assert_array_equal(pa.entry, pb.entry)
    want = csv.pipeline().sort_values("lead_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(wh.pipeline()[want.columns], want, check_dtype=False)


@needs_olist
def test_funnel_fit_cli_on_duckdb_file(olist_copy, tmp_path, capsys, monkeypatch):
    source, spec = olist_copy
    monkeypatch.chdir(tmp_path)
    outputs = []
    for i, extra in enumerate([{"source": "olist"}, {"source": source, "spec": spec}]):
        (tmp_path / f"p{i}.yaml").write_text(yaml.safe_dump({**extra, "model": "conjugate", "factors": ["origin"]}))
        assert main(["fit", f"p{i}.yaml", "--cache-dir", str(tmp_path / "cache")]) == 0
        out = capsys.readouterr().out.splitlines()
        outputs.append([line for line in out if not line.startswith(f"p{i}.yaml:") and " in " not in line])
    assert outputs[0] == outputs[1] and len(outputs[0]) > 5


def test_bad_warehouse_sources_name_the_problem(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"stages": ["NEW", "MQL", "SQL", "DEMO", "PROP"], "won": ["WON", "WON_B"],
                                    "lost": ["LOST", "DQ"], "attributes": ["region"]}))
    h = random_history(0)
    good = _duckdb_file(tmp_path / "crm.duckdb", h)
    with pytest.raises(FunnelDataError, match=r"DuckDB file .*nope.duckdb not found.*three slashes"):
        load_data(f"duckdb:///{tmp_path}/nope.duckdb::stage_history", spec=str(spec))
    with pytest.raises(FunnelDataError, match=r"no table 'stage_histroy'.*Did you mean \['stage_history'\]"):
        load_data(good.replace("::stage_history", "::stage_histroy"), spec=str(spec))
    renamed = _duckdb_file(tmp_path / "crm2.duckdb", h.rename(columns={"entered_at": "changed"}))
    with pytest.raises(FunnelDataError, match=r"crm2.duckdb::stage_history: missing column\(s\) 'entered_at'"):
        load_data(renamed, spec=str(spec))
    with pytest.raises(FunnelDataError, match=r"filter on column 'nope'"):
        load_data(good, spec=str(spec), filters={"nope": "x"})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"source": renamed, "spec": str(spec), "model": "conjugate"}))
    assert main(["fit", "p.yaml"]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) 'entered_at'" in err and "Traceback" not in err


def test_warehouse_pipeline_won_values_and_filters_match_pandas(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec = crm_spec(stale_after=3)
    spec_path.write_text(yaml.safe_dump(spec.to_dict()))
    h = random_history(7, n_leads=150)
    source = _duckdb_file(tmp_path / "crm.duckdb", h)
    cut = (h["entered_at"].max() - pd.Timedelta(days=60)).normalize()
    scope = {"filters": {"channel": ["web", "ads"]}, "start": h["entered_at"].min() + pd.Timedelta(days=50),
             "cutoff": cut}
    wh = load_data(source, spec=str(spec_path), **scope)
    table = derive.filter_frame(h[h["entered_at"] < cut + pd.Timedelta(days=1)], scope["filters"],
                                start=scope["start"])
    want = derive.open_pipeline(table, spec, cutoff=scope["cutoff"]).sort_values("lead_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(wh.pipeline()[want.columns], want, check_dtype=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snaps = derive.snapshots_from_history(table, spec, cutoff=scope["cutoff"])
    won = snaps[snaps["stage"].isin(spec.won)].drop_duplicates("lead_id").dropna(subset=["value"])
    got = wh.warehouse.won_values(wh.cutoff, ["region"])
    pd.testing.assert_frame_equal(got, won[["value", "region"]].reset_index(drop=True), check_dtype=False)
    assert wh.n_leads() == table["lead_id"].nunique()


def test_backtest_and_report_context_on_a_duckdb_file(tmp_path):
    """The backtest fetches the lead-level rows once and gives the pandas result; the report's
    context (transitions, stage counts, factor check) gives the same tables."""
    from funnel_models.datasets.demo import DEMO_SPEC, demo_data
    from funnel_models.evaluation.backtest import backtest
    d = demo_data(seed=5, months=10)
    spec = tmp_path / "demo.yaml"
    spec.write_text(yaml.safe_dump(DEMO_SPEC))
    source = _duckdb_file(tmp_path / "demo.duckdb", d.history)
    cut = str(d.history["entered_at"].max().date())
    pdata = load_data("demo", demo_seed=5, demo_months=10, cutoff=cut)
    wdata = load_data(source, spec=str(spec), cutoff=cut)
    pd.testing.assert_frame_equal(wdata.transitions(["region"]), pdata.transitions(["region"]), check_dtype=False)
    assert wdata.n_levels("region") == pdata.n_levels("region") and wdata.columns() == pdata.columns()
    kw = {"horizon": 1, "n_windows": 1, "model": "conjugate", "modes": ("conditional",), "progress": False}
    a, b = backtest(pdata, **kw), backtest(wdata, **kw)
    pd.testing.assert_frame_equal(a.frame, b.frame)
