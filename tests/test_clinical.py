"""The clinical core, rule by rule and representation by representation (issue #3 items 1, 4, 5).

Each test starts from the smallest eligible record and changes one thing: a code system, a phrasing (English or
Chinese), a negation, a status, a date.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cds.clinical.model import Outcome
from tests.clinical_records import (
    CPT,
    ICD9CM,
    ICD10,
    ICD10CM,
    ICD10PCS,
    ICDO3,
    LOCAL,
    LOINC,
    NCIT,
    RESECTION_DAYS,
    RXNORM,
    SNOMED,
    cc,
    codes,
    condition,
    eligible,
    knowledge,
    med_request,
    med_statement,
    observation,
    procedure,
    run,
    with_,
)

HISTOLOGY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"


def test_the_base_record_is_eligible_with_provenance() -> None:
    assessment = run(eligible())
    assert codes(assessment) == ("eligible", [])
    facts = assessment.facts
    assert facts["hcc"].evidence[0].reference == "Condition/hcc"
    assert facts["resection"].evidence[0].detail == "CPT 47120"
    assert facts["mvi"].value == "positive" and facts["mvi"].evidence[0].reference == "Observation/mvi"
    assert facts["margin"].value == "R0" and facts["margin"].evidence[0].element == "outcome"
    assert facts["recurrence"].date is not None and str(facts["recurrence"].date) == "2026-09-25"
    assert (facts["stage"].value, facts["child_pugh"].value, facts["ecog"].value) == ("B", "A5", "0")
    assert assessment.recurrence_reference == "Condition/hcc"


# ---------------------------------------------------------------------------------------------------------------
# HCC diagnosis
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        cc(ICD10CM, "C22.0"),
        cc(ICD10, "C22.0x001", text="肝细胞癌"),  # a national extension of C22.0 (prefix)
        cc(SNOMED, "109841003"),
        cc(SNOMED, "253018005"),  # fibrolamellar
        cc(NCIT, "C3099"),
        cc(ICDO3, "8170/3"),
        cc(LOCAL, "LC-01", text="Hepatocellular carcinoma, recurrent"),
        cc(LOCAL, "LC-01", text="HCC"),
        cc(LOCAL, "LC-01", text="肝细胞肝癌"),
        cc(LOCAL, "LC-01", text="原发性肝癌（肝细胞癌）"),
    ],
)
def test_hcc_in_codes_and_text(code: dict[str, Any]) -> None:
    record = with_(eligible(), condition("hcc", code, onset=950, clinical="recurrence"))
    assert run(record).facts["hcc"].value == "confirmed"


@pytest.mark.parametrize(
    "code",
    [
        cc(ICD10CM, "C22.1", "Intrahepatic cholangiocarcinoma"),
        cc(ICD10CM, "C22.0", "Combined hepatocellular-cholangiocarcinoma"),
        cc(ICD10CM, "Z85.05"),
        cc(ICD10CM, "C78.7", "Secondary malignant neoplasm of liver"),
        cc(ICD10CM, "C22.9"),  # unspecified liver cancer without HCC histology
        cc(LOCAL, "x", text="History of hepatocellular carcinoma"),
        cc(LOCAL, "x", text="Suspected HCC"),
        cc(LOCAL, "x", text="No evidence of HCC"),
        cc(LOCAL, "x", text="肝内胆管癌"),
    ],
)
def test_not_hcc(code: dict[str, Any]) -> None:
    record = with_(eligible(), condition("hcc", code, onset=950, clinical="recurrence"))
    assessment = run(record)
    assert assessment.outcome is Outcome.NOT_APPLICABLE
    assert "no-confirmed-hcc" in [f.code for f in assessment.exclusions]


def test_unspecified_liver_cancer_with_hcc_histology_counts() -> None:
    histology_ext = [{"url": HISTOLOGY, "valueCodeableConcept": cc(ICDO3, "8170/3")}]
    by_extension = with_(
        eligible(), condition("hcc", cc(ICD10CM, "C22.9"), onset=950, clinical="recurrence", extension=histology_ext)
    )
    assert run(by_extension).facts["hcc"].evidence[0].element == "extension[histology]"
    by_observation = with_(
        eligible(),
        condition("hcc", cc(LOCAL, "x", text="原发性肝癌"), onset=950, clinical="recurrence"),
        observation("histology", cc(LOINC, "31206-6"), RESECTION_DAYS - 3, valueCodeableConcept=cc(ICDO3, "8170/3")),
    )
    assert codes(run(by_observation)) == ("eligible", [])


@pytest.mark.parametrize(
    ("verification", "outcome"),
    [
        ("entered-in-error", "not-applicable"),
        ("refuted", "not-applicable"),
        ("unconfirmed", "not-applicable"),
        ("provisional", "not-applicable"),
        ("differential", "not-applicable"),
        ("confirmed", "eligible"),
        (None, "eligible"),  # not recorded: read as recorded (most problem lists omit it)
    ],
)
def test_verification_status(verification: str | None, outcome: str) -> None:
    record = with_(
        eligible(), condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="recurrence", verification=verification)
    )
    assert run(record).outcome.value == outcome


# ---------------------------------------------------------------------------------------------------------------
# Hepatectomy, transplant
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        cc(CPT, "47120"),
        cc(CPT, "47122"),
        cc(CPT, "47125"),
        cc(CPT, "47130"),
        cc(ICD10PCS, "0FB00ZZ"),
        cc(ICD10PCS, "0FT10ZZ"),
        cc(ICD9CM, "50.22"),
        cc(ICD9CM, "50.3"),
        cc(ICD9CM, "5022"),
        cc(SNOMED, "000", text="Right hepatectomy"),
        cc(LOCAL, "x", text="Laparoscopic liver resection (segments 6-7)"),
        cc(LOCAL, "x", text="Liver segmentectomy"),
        cc(LOCAL, "x", text="肝部分切除术"),
        cc(LOCAL, "x", text="右半肝切除"),
    ],
)
def test_partial_hepatectomy_in_codes_and_text(code: dict[str, Any]) -> None:
    record = with_(eligible(), procedure("hepatectomy", code, RESECTION_DAYS, outcome=cc(text="R0 resection")))
    assert codes(run(record)) == ("eligible", [])


@pytest.mark.parametrize(
    ("change", "exclusion"),
    [
        (procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, state="not-done"), "no-hepatectomy"),
        (procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, state="entered-in-error"), "no-hepatectomy"),
        (procedure("hepatectomy", cc(CPT, "47120"), None), "no-hepatectomy"),  # undated: cannot be ordered in time
        (
            procedure("hepatectomy", cc(LOCAL, "x", text="Right upper lobectomy (lung)"), RESECTION_DAYS),
            "no-hepatectomy",
        ),
        (procedure("hepatectomy", cc(LOCAL, "x", text="Liver biopsy"), RESECTION_DAYS), "no-hepatectomy"),
        (procedure("hepatectomy", cc(ICD10PCS, "0FT00ZZ"), RESECTION_DAYS), "transplant"),  # whole liver
        (procedure("hepatectomy", cc(ICD9CM, "50.4"), RESECTION_DAYS), "transplant"),
    ],
)
def test_what_is_not_a_partial_hepatectomy(change: dict[str, Any], exclusion: str) -> None:
    assessment = run(with_(eligible(), change))
    assert exclusion in [f.code for f in assessment.exclusions]


def test_an_undated_hepatectomy_is_reported() -> None:
    assessment = run(with_(eligible(), procedure("hepatectomy", cc(CPT, "47120"), None)))
    assert assessment.facts["resection"].value == "undated"
    assert "without a date" in assessment.exclusions[0].detail


@pytest.mark.parametrize(
    "change",
    [
        procedure("transplant", cc(CPT, "47135"), 200),
        procedure("transplant", cc(LOCAL, "x", text="肝移植术"), 200),
        condition("tx", cc(ICD10CM, "Z94.4"), onset=200),
    ],
)
def test_liver_transplant_is_another_population(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["transplant"])


def test_deceased() -> None:
    record = eligible()
    record["p1"] = {**record["p1"], "deceasedBoolean": True}
    assert codes(run(record)) == ("not-applicable", ["deceased"])


# ---------------------------------------------------------------------------------------------------------------
# Recurrence
# ---------------------------------------------------------------------------------------------------------------


def test_recurrence_as_a_second_condition_after_a_resolved_one() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(SNOMED, "109841003"), onset=950, clinical="resolved", abatementDateTime="2024-06-10"),
        condition("hcc-2", cc(SNOMED, "109841003", text="肝细胞癌复发"), onset=70),
        drop=("progression",),
    )
    assessment = run(record)
    assert codes(assessment) == ("eligible", [])
    assert (
        assessment.recurrence_reference == "Condition/hcc-2"
        and str(assessment.facts["recurrence"].date) == "2026-09-15"
    )


def test_recurrence_status_without_a_date_uses_the_hepatectomy_as_the_anchor() -> None:
    assessment = run(with_(eligible(), drop=("progression",)))
    assert assessment.facts["recurrence"].value == "confirmed" and assessment.facts["recurrence"].date is None
    assert "date is not recorded" in (assessment.facts["recurrence"].note or "")
    assert assessment.outcome is Outcome.ELIGIBLE


def test_recurrence_from_disease_status_only() -> None:
    record = with_(eligible(), condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"))
    assert codes(run(record)) == ("eligible", [])


@pytest.mark.parametrize(
    "record_change",
    [
        # Resolved HCC, no progression, a history code: not recurrence.
        lambda r: with_(
            r,
            condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="resolved", abatementDateTime="2024-06-10"),
            condition("hx", cc(ICD10CM, "Z85.05"), onset=500),
            drop=("progression",),
        ),
        # A new HCC record 10 days after surgery is residual disease, not recurrence.
        lambda r: with_(
            r,
            condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"),
            condition("hcc-2", cc(ICD10CM, "C22.0"), onset=RESECTION_DAYS - 10),
            drop=("progression",),
        ),
        # Progression recorded before the hepatectomy only.
        lambda r: with_(
            r,
            condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"),
            observation(
                "progression", cc(LOINC, "97509-4"), RESECTION_DAYS + 20, valueCodeableConcept=cc(SNOMED, "271299001")
            ),
        ),
        # "No progression" in words.
        lambda r: with_(
            r,
            condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"),
            observation("progression", cc(LOINC, "97509-4"), 60, valueString="No progression, stable"),
        ),
    ],
)
def test_no_recurrence(record_change: Any) -> None:
    assert codes(run(record_change(eligible()))) == ("not-applicable", ["no-recurrence"])


def test_an_unconfirmed_recurrence_does_not_count() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="resolved", abatementDateTime="2024-06-10"),
        condition("hcc-2", cc(ICD10CM, "C22.0"), onset=70, verification="provisional"),
        drop=("progression",),
    )
    assessment = run(record)
    assert codes(assessment) == ("not-applicable", ["no-recurrence"])
    assert "unconfirmed" in assessment.exclusions[0].detail


# ---------------------------------------------------------------------------------------------------------------
# MVI
# ---------------------------------------------------------------------------------------------------------------


def mvi(code: dict[str, Any], days: int = RESECTION_DAYS - 3, state: str = "final", **value: Any) -> dict[str, Any]:
    return observation("mvi", code, days, state=state, **value)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        (mvi(cc(LOINC, "33761-8"), valueCodeableConcept=cc(SNOMED, "52101004")), "positive"),
        (mvi(cc(LOINC, "33761-8"), valueCodeableConcept=cc(SNOMED, "2667000")), "negative"),
        (mvi(cc(LOINC, "33761-8"), valueCodeableConcept=cc(SNOMED, "47492008")), "negative"),
        (mvi(cc(LOINC, "33739-4"), valueString="Present (small vessel)"), "positive"),
        (mvi(cc(LOINC, "33739-4"), valueString="Not identified"), "negative"),
        (mvi(cc(LOINC, "33739-4"), valueBoolean=True), "positive"),
        (mvi(cc(LOCAL, "M", text="微血管侵犯"), valueString="有"), "positive"),
        (mvi(cc(LOCAL, "M", text="微血管侵犯"), valueString="无"), "negative"),
        (mvi(cc(LOCAL, "M", text="微血管侵犯（MVI）分级"), valueString="M2"), "positive"),
        (mvi(cc(LOCAL, "M", text="MVI分级"), valueString="M1"), "positive"),
        (mvi(cc(LOCAL, "M", text="MVI分级"), valueString="M0"), "negative"),
        (mvi(cc(LOCAL, "M", text="MVI"), valueString="(+)"), "positive"),  # abbreviation on the resection pathology
        (mvi(cc(LOCAL, "M", text="Microvascular invasion"), valueString="absent"), "negative"),
        (mvi(cc(LOCAL, "M", text="Lymphovascular invasion (small vessel)"), valueString="Present"), "positive"),
    ],
)
def test_mvi_representations(change: dict[str, Any], value: str) -> None:
    assessment = run(with_(eligible(), change))
    assert assessment.facts["mvi"].value == value
    assert assessment.outcome.value == ("eligible" if value == "positive" else "not-applicable")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (mvi(cc(LOINC, "33761-8"), state="preliminary", valueCodeableConcept=cc(SNOMED, "52101004")), "preliminary"),
        (mvi(cc(LOINC, "33761-8"), days=100, valueCodeableConcept=cc(SNOMED, "52101004")), "not from the hepatectomy"),
        (mvi(cc(LOINC, "33761-8"), valueCodeableConcept=cc(SNOMED, "82334004")), "no MVI result"),  # indeterminate
        (mvi(cc(LOCAL, "M", text="MVI"), days=30, valueString="present"), "no MVI result"),  # "MVI" not on pathology
        (mvi(cc(LOCAL, "M", text="Macrovascular invasion (MVI)"), valueString="present"), "no MVI result"),
    ],
)
def test_mvi_unknown(change: dict[str, Any], why: str) -> None:
    assessment = run(with_(eligible(), change))
    assert assessment.facts["mvi"].value is None and why in (assessment.facts["mvi"].note or "")
    outcome, missing = codes(assessment)
    assert outcome == "information-needed" and "mvi" in missing


def test_conflicting_mvi_results_are_unknown() -> None:
    record = with_(eligible(), observation("mvi-2", cc(LOINC, "33739-4"), RESECTION_DAYS - 2, valueString="absent"))
    assessment = run(record)
    assert assessment.facts["mvi"].value is None and "conflicting" in (assessment.facts["mvi"].note or "")


def test_mvi_in_condition_evidence_and_in_a_pathology_panel() -> None:
    for words, value in (
        ("Microvascular invasion: present (M2)", "positive"),
        ("微血管侵犯 M0", "negative"),
        ("No microvascular invasion", "negative"),
        ("Microvascular invasion on resection specimen", None),
        ("Microvascular invasion: indeterminate", None),
        ("Suspected microvascular invasion (MRI)", None),
    ):
        evidence = [{"code": [cc(LOCAL, "x", text=words)]}]
        record = with_(
            eligible(),
            condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="recurrence", evidence=evidence),
            drop=("mvi",),
        )
        assert run(record).facts["mvi"].value == value, words  # an explicit answer, or unknown
    panel = observation(
        "panel",
        cc(LOCAL, "PATH", text="Liver resection pathology"),
        RESECTION_DAYS - 3,
        component=[{"code": cc(LOINC, "33761-8"), "valueCodeableConcept": cc(SNOMED, "52101004")}],
    )
    assert run(with_(eligible(), panel, drop=("mvi",))).facts["mvi"].value == "positive"


def test_which_grades_count_as_positive_is_configuration() -> None:
    strict = dataclasses.replace(
        knowledge(), criteria=dataclasses.replace(knowledge().criteria, mvi_positive_grades=frozenset({"M2"}))
    )
    record = with_(eligible(), mvi(cc(LOCAL, "M", text="MVI分级"), valueString="M1"))
    assert run(record, know=strict).facts["mvi"].value == "negative"
    assert run(record).facts["mvi"].value == "positive"


# ---------------------------------------------------------------------------------------------------------------
# Margin
# ---------------------------------------------------------------------------------------------------------------


def margin_only(*changes: dict[str, Any]) -> dict[str, dict]:
    return with_(eligible(), procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS), *changes)


@pytest.mark.parametrize(
    ("record", "value"),
    [
        (
            with_(eligible(), procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, outcome=cc(text="切缘阴性"))),
            "R0",
        ),
        (
            with_(
                eligible(),
                procedure(
                    "hepatectomy",
                    cc(CPT, "47120"),
                    RESECTION_DAYS,
                    note=[{"text": "Margins negative (closest 1.2 cm)."}],
                ),
            ),
            "R0",
        ),
        (
            margin_only(
                observation(
                    "m", cc(SNOMED, "396631001"), RESECTION_DAYS - 3, valueCodeableConcept=cc(SNOMED, "260385009")
                )
            ),
            "R0",
        ),
        (margin_only(observation("m", cc(SNOMED, "17964000"), RESECTION_DAYS - 3, valueString="R0")), "R0"),
        (
            margin_only(
                observation("m", cc(LOINC, "33737-8"), RESECTION_DAYS - 3, valueQuantity={"value": 5, "unit": "mm"})
            ),
            "R0",
        ),
        (
            margin_only(
                observation("m", cc(LOINC, "33737-8"), RESECTION_DAYS - 3, valueQuantity={"value": 0, "unit": "mm"})
            ),
            "involved",
        ),
        (
            margin_only(
                observation(
                    "m", cc(SNOMED, "396631001"), RESECTION_DAYS - 3, valueCodeableConcept=cc(SNOMED, "396324006")
                )
            ),
            "involved",
        ),
        (
            with_(
                eligible(), procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, outcome=cc(text="R1 resection"))
            ),
            "involved",
        ),
        (
            with_(eligible(), procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, outcome=cc(text="切缘阳性"))),
            "involved",
        ),
    ],
)
def test_margin_representations(record: dict[str, dict], value: str) -> None:
    assessment = run(record)
    assert assessment.facts["margin"].value == value
    assert codes(assessment) == (("eligible", []) if value == "R0" else ("not-applicable", ["margin-involved"]))


def test_margin_unknown_when_missing_conflicting_or_not_from_the_hepatectomy() -> None:
    assert codes(run(margin_only())) == ("information-needed", ["margin"])
    pathology_wins = with_(eligible(), observation("m", cc(SNOMED, "17964000"), RESECTION_DAYS - 3, valueString="R1"))
    assert run(pathology_wins).facts["margin"].value == "involved"  # over the operation note's "R0 resection"
    conflicting = margin_only(
        observation("m", cc(SNOMED, "17964000"), RESECTION_DAYS - 3, valueString="R1"),
        observation("m2", cc(SNOMED, "396631001"), RESECTION_DAYS - 2, valueString="R0"),
    )
    assert run(conflicting).facts["margin"].value is None
    elsewhere = margin_only(observation("m", cc(SNOMED, "17964000"), 50, valueString="R0"))
    assessment = run(elsewhere)
    assert assessment.facts["margin"].value is None and "not from the hepatectomy" in assessment.facts["margin"].note


# ---------------------------------------------------------------------------------------------------------------
# Stage at recurrence
# ---------------------------------------------------------------------------------------------------------------


def stage(value: str, days: int = 40, code: dict[str, Any] | None = None) -> dict[str, Any]:
    return observation("bclc", code or cc(NCIT, "C115134"), days, valueString=value)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        (stage("BCLC B"), "B"),
        (stage("Stage B"), "B"),
        (stage("BCLC-B (multinodular)"), "B"),
        (stage("中期"), "B"),
        (observation("bclc", cc(NCIT, "C115134"), 40, valueCodeableConcept=cc(NCIT, "C115135")), "A"),
        (stage("BCLC stage A"), "A"),
        (stage("BCLC C"), "C"),
        (stage("CNLC IIb期", code=cc(LOCAL, "S", text="CNLC分期")), "B"),
        (stage("中国肝癌分期 Ⅱa期", code=cc(LOCAL, "S", text="中国肝癌分期")), "B"),
        (stage("CNLC IIIa", code=cc(LOCAL, "S", text="CNLC stage")), "CNLC IIIa"),
        (stage("CNLC Ib", code=cc(LOCAL, "S", text="CNLC stage")), "CNLC Ib"),
    ],
)
def test_stage_representations(change: dict[str, Any], value: str) -> None:
    assessment = run(with_(eligible(), change))
    assert assessment.facts["stage"].value == value
    assert codes(assessment) == (("eligible", []) if value == "B" else ("not-applicable", ["stage-not-b"]))


@pytest.mark.parametrize(
    ("change", "note"),
    [
        (stage("BCLC B", days=300), "stale"),  # before the recurrence (60 days ago)
        (stage("BCLC B", days=58), ""),  # after the recurrence: current
        (stage("Stage 2", days=40), "no BCLC/CNLC staging"),
    ],
)
def test_stage_staleness(change: dict[str, Any], note: str) -> None:
    assessment = run(with_(eligible(), change))
    if note:
        assert assessment.facts["stage"].value is None and note in assessment.facts["stage"].note
    else:
        assert assessment.facts["stage"].value == "B"


def test_staging_older_than_the_limit_is_stale_even_after_the_recurrence() -> None:
    record = with_(
        eligible(),
        stage("BCLC B", days=100),
        observation("progression", cc(LOINC, "97509-4"), 120, valueCodeableConcept=cc(SNOMED, "271299001")),
    )
    assert codes(run(record)) == ("information-needed", ["stage"])


def test_condition_stage_counts_only_when_dated_after_the_recurrence() -> None:
    staged = [
        {"summary": cc(text="BCLC B"), "type": cc(NCIT, "C115132"), "assessment": [{"reference": "Observation/img"}]}
    ]
    imaging = observation("img", cc(LOCAL, "CT", text="CT abdomen"), 30, valueString="3 nodules")
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="recurrence", stage=staged),
        imaging,
        drop=("bclc",),
    )
    assert run(record).facts["stage"].value == "B"
    old = [{"summary": cc(text="BCLC B"), "type": cc(NCIT, "C115132")}]  # no assessment: the first diagnosis' stage
    record = with_(
        eligible(), condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="recurrence", stage=old), drop=("bclc",)
    )
    assert codes(run(record)) == ("information-needed", ["stage"])


@pytest.mark.parametrize(
    "change",
    [
        condition("pvtt", cc(LOCAL, "x", text="Portal vein tumour thrombus"), onset=20),
        condition("pvtt", cc(LOCAL, "x", text="门静脉癌栓"), onset=20),
        condition("mets", cc(ICD10CM, "C78.01"), onset=20),
        condition("mets", cc(ICD10CM, "C79.51", text="Bone metastasis"), onset=20),
        condition("mets", cc(SNOMED, "399409002"), onset=20),
        condition("mets", cc(LOCAL, "x", text="肺转移"), onset=20),
        observation("ct", cc(LOINC, "33740-2"), 20, valueString="Present"),
        observation(
            "ct", cc(LOCAL, "CT", text="CT liver"), 20, valueString="Vp2 tumour thrombus in the right portal vein"
        ),
    ],
)
def test_vascular_invasion_or_spread_after_recurrence_is_not_bclc_b(change: dict[str, Any]) -> None:
    assessment = run(with_(eligible(), change))
    assert codes(assessment) == ("not-applicable", ["stage-not-b"])
    assert assessment.facts["stage"].value == "C"


@pytest.mark.parametrize(
    "change",
    [
        condition("liver-mets", cc(ICD10CM, "C78.7"), onset=20),  # "liver metastasis" codes intrahepatic spread
        observation("ct", cc(LOCAL, "CT", text="CT liver"), 20, valueString="No PVTT, no extrahepatic spread"),
        observation("ct", cc(LOCAL, "CT", text="CT liver"), 20, valueString="未见门静脉癌栓"),
        condition(
            "pvtt-old",
            cc(LOCAL, "x", text="Portal vein tumour thrombus"),
            onset=700,
            clinical="resolved",
            abatementDateTime="2025-01-01",
        ),
    ],
)
def test_negated_or_intrahepatic_findings_do_not_change_the_stage(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("eligible", [])


def test_portal_vein_thrombosis_not_said_to_be_tumour_makes_the_stage_unknown() -> None:
    assessment = run(with_(eligible(), condition("pvt", cc(ICD10CM, "I81"), onset=20)))
    assert codes(assessment) == ("information-needed", ["stage"])
    assert "possible portal vein tumour thrombus" in (assessment.facts["stage"].note or "")


def test_conflicting_stagings_on_the_same_date_are_unknown() -> None:
    record = with_(eligible(), observation("bclc-2", cc(NCIT, "C115134"), 40, valueString="BCLC C"))
    assert codes(run(record)) == ("information-needed", ["stage"])


# ---------------------------------------------------------------------------------------------------------------
# Child-Pugh and ECOG
# ---------------------------------------------------------------------------------------------------------------


def cp(days: int = 10, **value: Any) -> dict[str, Any]:
    return observation("cp", cc(LOCAL, "CP", text="Child-Pugh"), days, **value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (cp(valueString="A5"), ("eligible", [])),
        (cp(valueInteger=6), ("eligible", [])),
        (cp(valueString="Class A"), ("eligible", [])),
        (cp(valueString="A级（6分）"), ("eligible", [])),
        (cp(valueInteger=7), ("eligible", ["child-pugh-b"])),
        (cp(valueString="B (7 points)"), ("eligible", ["child-pugh-b"])),
        (cp(valueInteger=8), ("not-applicable", ["child-pugh"])),
        (cp(valueString="C"), ("not-applicable", ["child-pugh"])),
        (cp(valueString="B"), ("information-needed", ["child_pugh"])),  # B7 or B8-9?
        (cp(valueString="A (9 points)"), ("information-needed", ["child_pugh"])),  # inconsistent
        (cp(days=90, valueString="A5"), ("information-needed", ["child_pugh"])),  # stale
    ],
)
def test_child_pugh(change: dict[str, Any], expected: tuple[str, list[str]]) -> None:
    assert codes(run(with_(eligible(), change))) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (condition("ascites", cc(ICD10CM, "R18.8"), onset=30), ("not-applicable", ["decompensated"])),
        (
            condition("he", cc(LOCAL, "x", text="Hepatic encephalopathy grade 2"), onset=30),
            ("not-applicable", ["decompensated"]),
        ),
        (condition("bleed", cc(ICD10CM, "I85.11"), onset=100), ("not-applicable", ["decompensated"])),
        (condition("ascites", cc(LOCAL, "x", text="腹水"), onset=30), ("not-applicable", ["decompensated"])),
        (condition("ascites", cc(ICD10CM, "R18.8"), onset=400), ("not-applicable", ["decompensated"])),  # still active
        (condition("ascites", cc(ICD10CM, "R18.8"), onset=400, clinical=None), ("eligible", [])),  # no status, old
        (condition("ascites", cc(LOCAL, "x", text="No ascites"), onset=30), ("eligible", [])),
    ],
)
def test_decompensation_overrides_child_pugh(change: dict[str, Any], expected: tuple[str, list[str]]) -> None:
    assert codes(run(with_(eligible(), change))) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (observation("ecog", cc(LOINC, "89247-1"), 10, valueInteger=1), ("eligible", ["ecog-1"])),
        (observation("ecog", cc(LOINC, "89247-1"), 10, valueInteger=2), ("not-applicable", ["ecog"])),
        (observation("ecog", cc(LOINC, "89247-1"), 10, valueCodeableConcept=cc(LOINC, "LA9622-7")), ("eligible", [])),
        (
            observation("ecog", cc(LOINC, "89247-1"), 10, valueCodeableConcept=cc(LOINC, "LA9623-5")),
            ("eligible", ["ecog-1"]),
        ),
        (
            observation("ecog", cc(LOCAL, "PS", text="ECOG performance status"), 10, valueString="PS 0"),
            ("eligible", []),
        ),
        (
            observation("ecog", cc(LOCAL, "PS", text="体力状况评分"), 10, valueString="ECOG 3分"),
            ("not-applicable", ["ecog"]),
        ),
        (observation("ecog", cc(LOINC, "89247-1"), 90, valueInteger=0), ("information-needed", ["ecog"])),  # stale
        (
            observation("ecog", cc(LOINC, "89243-0", text="Karnofsky performance status"), 10, valueInteger=90),
            ("information-needed", ["ecog"]),
        ),  # Karnofsky is another scale
    ],
)
def test_ecog(change: dict[str, Any], expected: tuple[str, list[str]]) -> None:
    assert codes(run(with_(eligible(), change))) == expected


def test_the_most_recent_ecog_wins() -> None:
    record = with_(eligible(), observation("ecog-old", cc(LOINC, "89247-1"), 30, valueInteger=2))
    assert codes(run(record)) == ("eligible", [])


# ---------------------------------------------------------------------------------------------------------------
# Medications
# ---------------------------------------------------------------------------------------------------------------

SORAFENIB = cc(RXNORM, "597747", text="Sorafenib 200 mg tablet")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (med_request("m", SORAFENIB, "active"), ["sorafenib-current"]),
        (med_request("m", SORAFENIB, "on-hold"), ["sorafenib-current"]),
        (med_request("m", cc(RXNORM, "495881"), "completed"), ["sorafenib-earlier"]),
        (med_request("m", cc(LOCAL, "x", text="Nexavar 200 mg"), "stopped"), ["sorafenib-earlier"]),
        (med_statement("m", cc(LOCAL, "x", text="索拉非尼"), "active"), ["sorafenib-current"]),
        (med_statement("m", cc(LOCAL, "x", text="多吉美"), "completed"), ["sorafenib-earlier"]),
        (med_request("m", cc(LOCAL, "x", text="Lenvatinib 8 mg"), "completed"), ["other-systemic"]),
        (med_statement("m", cc(LOCAL, "x", text="阿替利珠单抗"), "completed"), ["other-systemic"]),
    ],
)
def test_systemic_therapy_excludes(change: dict[str, Any], expected: list[str]) -> None:
    assert codes(run(with_(eligible(), change))) == ("not-applicable", expected)


@pytest.mark.parametrize(
    "change",
    [
        med_request("m", SORAFENIB, "draft", intent="proposal"),  # someone's proposal: never ordered
        med_request("m", SORAFENIB, "active", intent="plan"),
        med_request("m", SORAFENIB, "cancelled"),
        med_request("m", SORAFENIB, "entered-in-error"),
        med_statement("m", SORAFENIB, "not-taken"),
        med_request("m", cc(LOCAL, "x", text="Entecavir 0.5 mg"), "active"),
    ],
)
def test_what_is_not_exposure(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("eligible", [])


def test_our_own_proposal_is_not_exposure_but_is_reported() -> None:
    tag = {"tag": [{"system": "urn:sortace-cds:tag", "code": "sor-tace-proposal"}]}
    assessment = run(with_(eligible(), med_request("ours", SORAFENIB, "draft", intent="proposal", meta=tag)))
    assert codes(assessment) == ("eligible", [])
    assert assessment.own_proposal is not None and assessment.own_proposal.reference == "MedicationRequest/ours"


def test_medication_by_reference_display_contained_or_unnamed() -> None:
    by_display = {
        "resourceType": "MedicationRequest",
        "id": "m",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/x1", "display": "Sorafenib tosylate"},
        "subject": {"reference": "Patient/p1"},
    }
    assert codes(run(with_(eligible(), by_display))) == ("not-applicable", ["sorafenib-current"])
    contained = {
        **by_display,
        "medicationReference": {"reference": "#med"},
        "contained": [{"resourceType": "Medication", "id": "med", "code": cc(RXNORM, "495881")}],
    }
    assert codes(run(with_(eligible(), contained))) == ("not-applicable", ["sorafenib-current"])
    unnamed = {**by_display, "medicationReference": {"reference": "Medication/x1"}}
    assert codes(run(with_(eligible(), unnamed))) == ("information-needed", ["data-medications"])
    coded_only = med_request("m2", cc(RXNORM, "1599164"), "active")  # a code nobody here can name
    assert codes(run(with_(eligible(), coded_only))) == ("information-needed", ["data-medications"])


# ---------------------------------------------------------------------------------------------------------------
# Person: age, pregnancy; other cautions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        ("2009-01-01", ("not-applicable", ["under-age"])),
        ("1949-01-01", ("eligible", ["age-over-range"])),
        ("2008", ("information-needed", ["age"])),  # 17 or 18: the year alone cannot tell
        ("1966", ("eligible", [])),
    ],
)
def test_age(birth: str, expected: tuple[str, list[str]]) -> None:
    record = eligible()
    record["p1"] = {**record["p1"], "birthDate": birth}
    assert codes(run(record)) == expected


def test_missing_birth_date_is_asked_for() -> None:
    record = eligible()
    record["p1"] = {k: v for k, v in record["p1"].items() if k != "birthDate"}
    assert codes(run(record)) == ("information-needed", ["age"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (condition("preg", cc(ICD10CM, "Z33.1"), onset=60), ("not-applicable", ["pregnant"])),
        (condition("preg", cc(LOCAL, "x", text="妊娠"), onset=60), ("not-applicable", ["pregnant"])),
        (condition("preg", cc(LOCAL, "x", text="Not pregnant"), onset=60), ("eligible", [])),
        (
            condition("preg", cc(ICD10CM, "Z33.1"), onset=800, clinical="resolved", abatementDateTime="2024-11-01"),
            ("eligible", []),
        ),
    ],
)
def test_pregnancy(change: dict[str, Any], expected: tuple[str, list[str]]) -> None:
    assert codes(run(with_(eligible(), change))) == expected


def test_tace_since_the_recurrence_is_a_caution_but_not_before() -> None:
    after = with_(eligible(), procedure("tace", cc(LOCAL, "x", text="DEB-TACE"), 20))
    assert codes(run(after)) == ("eligible", ["tace-given"])
    before = with_(eligible(), procedure("tace", cc(CPT, "37243"), 500))
    assert codes(run(before)) == ("eligible", [])


def test_several_cautions_together() -> None:
    record = with_(eligible(), cp(valueInteger=7), observation("ecog", cc(LOINC, "89247-1"), 10, valueInteger=1))
    record["p1"] = {**record["p1"], "birthDate": "1948-05-05"}
    assert codes(run(record)) == ("eligible", ["age-over-range", "child-pugh-b", "ecog-1"])


def test_exclusions_win_over_missing_facts() -> None:
    record = with_(eligible(), observation("ecog", cc(LOINC, "89247-1"), 10, valueInteger=3), drop=("mvi",))
    assert codes(run(record)) == ("not-applicable", ["ecog"])


@pytest.mark.parametrize(
    ("unavailable", "incomplete", "missing"),
    [
        (frozenset({"Observation"}), frozenset(), "data-observations"),
        (frozenset({"MedicationRequest"}), frozenset(), "data-medications"),
        (frozenset(), frozenset({"Condition"}), "data-conditions"),
        (frozenset(), frozenset({"MedicationStatement"}), "data-medications"),
    ],
)
def test_data_that_could_not_be_read_prevents_a_recommendation(
    unavailable: frozenset[str], incomplete: frozenset[str], missing: str
) -> None:
    assessment = run(eligible(), unavailable=unavailable, incomplete=incomplete)
    assert codes(assessment) == ("information-needed", [missing])


def test_the_digest_follows_the_facts_and_their_records() -> None:
    first, again = run(eligible()), run(eligible())
    assert first.digest() == again.digest()  # the same record: the same digest (suppression holds)
    value = run(with_(eligible(), observation("ecog", cc(LOINC, "89247-1"), 10, valueInteger=1)))
    assert value.digest() != first.digest()  # a fact's value changed
    restaged = run(with_(eligible(), observation("bclc-new", cc(NCIT, "C115134"), 5, valueString="BCLC B")))
    assert restaged.digest() != first.digest()  # a new record behind a fact (a new staging)
    noise = run(with_(eligible(), observation("bp", cc(LOINC, "8480-6"), 1, valueQuantity={"value": 120})))
    assert noise.digest() == first.digest()  # unrelated data does not count
