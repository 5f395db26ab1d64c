"""Plans: several related loads in dependency order (``crmload migrate PLAN.toml``), DESIGN decision 12.

``Plan.load(path)`` reads the plan file; ``analyse(plan)`` reads headers and maps into a graph of loads
(edges from lookups by key) and its tiers; ``prepare_data`` indexes keys and sorts self-references;
``PlanRunner`` runs the tiers through the import's ``Loader``; ``PlanSummary`` reports per load and overall.
"""

from __future__ import annotations

from crmload.plan.analysis import Analysis, LoadInfo, analyse, prepare_data
from crmload.plan.dryrun import dry_run, unresolved
from crmload.plan.graph import Edge, order
from crmload.plan.runner import PlanRunner, RunOptions
from crmload.plan.spec import LoadSpec, Plan
from crmload.plan.summary import LoadResult, PlanSummary

__all__ = [
    "Analysis",
    "Edge",
    "LoadInfo",
    "LoadResult",
    "LoadSpec",
    "Plan",
    "PlanRunner",
    "PlanSummary",
    "RunOptions",
    "analyse",
    "dry_run",
    "order",
    "prepare_data",
    "unresolved",
]
