"""In CI the real-data tests must run, not skip: the Olist data must be found."""
from __future__ import annotations

import os

import pytest

from funnel_models.datasets.olist import olist_dir


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only enforced in CI")
def test_olist_data_is_found_in_ci():
    assert (olist_dir() / "olist_marketing_qualified_leads_dataset.csv").is_file(), (
        f"Olist data not found at {olist_dir()}; CI must see ../shared/datasets/olist-marketing-funnel")
