"""Studies: sweeps declared on a command line or in a TOML file (:mod:`.spec`).

Example:
    >>> from initlab.studies import parse_overrides, run_id
    >>> study = parse_overrides(["lr=0.1,0.01", "steps=100"])
    >>> len(study), len({run_id(p) for p in study.points()})
    (2, 2)
"""

from __future__ import annotations

from initlab.studies.plan import MEMBER_FIELDS, Plan, StackPlan, load_data, plan
from initlab.studies.report import write_report
from initlab.studies.run import StudySummary, run_study
from initlab.studies.spec import (
    FIELDS,
    Distribution,
    Field,
    Study,
    canonical_json,
    load_toml,
    parse_overrides,
    run_id,
)

__all__ = [
    "FIELDS",
    "MEMBER_FIELDS",
    "Distribution",
    "Field",
    "Plan",
    "StackPlan",
    "Study",
    "StudySummary",
    "canonical_json",
    "load_data",
    "load_toml",
    "parse_overrides",
    "plan",
    "run_id",
    "run_study",
    "write_report",
]
