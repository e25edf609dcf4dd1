"""Example data: the seeded demo funnel and public data sets read in place."""
from __future__ import annotations

from .demo import DEMO_SPEC, DemoData, DemoTruth, demo_data
from .olist import (OLIST_DEALS_FILE, OLIST_LEADS_FILE, OLIST_OPPORTUNITY_SPEC, OLIST_SPEC, olist_dir,
                    olist_opportunities, olist_stage_history)

__all__ = ["demo_data", "DemoData", "DemoTruth", "DEMO_SPEC", "OLIST_SPEC", "OLIST_OPPORTUNITY_SPEC",
           "OLIST_LEADS_FILE", "OLIST_DEALS_FILE", "olist_dir", "olist_stage_history", "olist_opportunities"]
