"""FunnelSpec: YAML/dict forms, validation listing every problem, the >10-stage warning."""
from __future__ import annotations

import pytest

from funnel_models.errors import FunnelWarning, SpecError
from funnel_models.data.spec import ENTRY, LOST, WON, FunnelSpec

GOOD = {
    "stages": [{"code": "NEW", "name": "New lead"}, {"code": "QUAL", "name": "Qualified"}],
    "won": ["WON"],
    "lost": ["LOST", "DISQ"],
    "columns": {"lead_id": "opportunity", "stage": "deal_stage", "entered_at": "changed_on"},
    "attributes": ["region", "campaign"],
}


def test_yaml_roundtrip(tmp_path):
    import yaml
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    spec = FunnelSpec.from_yaml(path)
    assert spec.codes == ("NEW", "QUAL")
    assert spec.states == ("NEW", "QUAL", WON, LOST)
    assert spec.canonical("DISQ") == LOST and spec.canonical("WON") == WON
    assert spec.rank() == {"NEW": 0, "QUAL": 1, "WON": 2, "LOST": 3, "DISQ": 3}
    assert FunnelSpec.from_dict(spec.to_dict()) == spec
    assert spec.with_columns({"lead_id": "id"}).columns["lead_id"] == "id"


def test_every_problem_is_listed_at_once():
    bad = {"stages": [{"code": "A"}, {"code": "A"}, {"code": 3}, {"name": "x"}], "lost": ["A"], "colour": 1}
    with pytest.raises(SpecError) as exc:
        FunnelSpec.from_dict(bad, source="my.yaml")
    msg = str(exc.value)
    assert msg.startswith("my.yaml")
    for part in ("unknown key(s) ['colour']", "stages[2].code must be a non-empty string",
                 "stages[3] must be a mapping", "no won code", "duplicate status code(s) ['A']"):
        assert part in msg, part


def test_empty_stages_and_reserved_code():
    with pytest.raises(SpecError, match="'stages' is empty"):
        FunnelSpec.from_dict({"stages": [], "won": ["W"]})
    with pytest.raises(SpecError, match="reserved"):
        FunnelSpec.from_dict({"stages": [ENTRY], "won": ["W"]})
    with pytest.raises(SpecError, match="stale_after"):
        FunnelSpec.from_dict({"stages": ["A"], "won": ["W"], "stale_after": 0})


def test_unknown_code_lookup_lists_declared_codes():
    spec = FunnelSpec.from_dict(GOOD)
    with pytest.raises(SpecError, match=r"unknown status code 'X'.*'NEW', 'QUAL', 'WON'"):
        spec.canonical("X")


def test_more_than_ten_stages_warns():
    with pytest.warns(FunnelWarning, match="11 open stages"):
        FunnelSpec.from_dict({"stages": [f"S{i}" for i in range(11)], "won": ["W"]})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        FunnelSpec.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("stages: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        FunnelSpec.from_yaml(tmp_path / "bad.yaml")
