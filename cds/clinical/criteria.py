"""The trial criteria and practice thresholds of ``cards/criteria.toml`` as one typed, validated object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Criteria:
    age_minimum_years: int
    age_caution_above_years: int
    recurrence_minimum_days: int
    pathology_window_days: int
    mvi_positive_grades: frozenset[str]
    eligible_bclc: frozenset[str]
    cnlc_as_bclc_b: frozenset[str]
    staging_max_age_days: int
    child_pugh_eligible_max: int
    child_pugh_caution_max: int
    child_pugh_max_age_days: int
    decompensation_lookback_days: int
    ecog_eligible_max: int
    ecog_caution_max: int
    ecog_max_age_days: int
    exclude_current_sorafenib: bool
    exclude_prior_sorafenib: bool
    exclude_other_systemic: bool
    caution_tace_since_recurrence: bool


def build_criteria(data: Mapping[str, Any]) -> Criteria:
    """Read the criteria file's tables; every key is required.

    :raise ValueError: a key is missing or has the wrong type.
    """
    try:
        criteria = Criteria(
            age_minimum_years=_int(data["age"]["minimum_years"]),
            age_caution_above_years=_int(data["age"]["caution_above_years"]),
            recurrence_minimum_days=_int(data["resection"]["minimum_days_to_recurrence"]),
            pathology_window_days=_int(data["resection"]["pathology_window_days"]),
            mvi_positive_grades=frozenset(data["mvi"]["positive_grades"]),
            eligible_bclc=frozenset(data["stage"]["eligible_bclc"]),
            cnlc_as_bclc_b=frozenset(data["stage"]["cnlc_equivalent_to_bclc_b"]),
            staging_max_age_days=_int(data["stage"]["staging_max_age_days"]),
            child_pugh_eligible_max=_int(data["child_pugh"]["eligible_max_score"]),
            child_pugh_caution_max=_int(data["child_pugh"]["caution_max_score"]),
            child_pugh_max_age_days=_int(data["child_pugh"]["max_age_days"]),
            decompensation_lookback_days=_int(data["child_pugh"]["decompensation_lookback_days"]),
            ecog_eligible_max=_int(data["ecog"]["eligible_max"]),
            ecog_caution_max=_int(data["ecog"]["caution_max"]),
            ecog_max_age_days=_int(data["ecog"]["max_age_days"]),
            exclude_current_sorafenib=_bool(data["systemic_therapy"]["exclude_current_sorafenib"]),
            exclude_prior_sorafenib=_bool(data["systemic_therapy"]["exclude_prior_sorafenib"]),
            exclude_other_systemic=_bool(data["systemic_therapy"]["exclude_other_systemic"]),
            caution_tace_since_recurrence=_bool(data["tace"]["caution_if_given_since_recurrence"]),
        )
    except KeyError as exc:
        raise ValueError(f"criteria: missing key {exc.args[0]!r}") from exc
    if criteria.child_pugh_caution_max < criteria.child_pugh_eligible_max:
        raise ValueError("criteria: child_pugh.caution_max_score must not be below eligible_max_score")
    if criteria.ecog_caution_max < criteria.ecog_eligible_max:
        raise ValueError("criteria: ecog.caution_max must not be below eligible_max")
    return criteria


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"criteria: expected an integer, not {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"criteria: expected true or false, not {value!r}")
    return value
