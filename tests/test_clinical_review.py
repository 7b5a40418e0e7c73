"""Regression tests for the clinical safety review: each way the eligible card could reach the wrong patient,
reproduced and closed (issue #3, "a card never fires on the wrong patient")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clinical_records import (
    ICD10CM,
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
    med_request,
    observation,
    run,
    with_,
)

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def imaging(rid: str, days: int, text: str, value: str) -> dict[str, Any]:
    return observation(
        rid,
        cc(LOCAL, "CT", text=text),
        days,
        valueString=value,
        category=[{"coding": [{"system": CATEGORY, "code": "imaging"}]}],
    )


# 1. HCC recognised where it is not ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        cc(ICD10CM, "C78.7", "Secondary malignant neoplasm of liver (HCC)"),
        cc(LOCAL, "x", text="Metastatic colon cancer to liver (HCC)"),
        cc(ICD10CM, "K74.60", "Cirrhosis, at risk for HCC"),
        cc(LOCAL, "x", text="HCC surveillance"),
        cc(SNOMED, "19943007", text="Cirrhosis of liver (HCC)"),
    ],
)
def test_hcc_words_do_not_override_other_diagnoses(code: dict[str, Any]) -> None:
    record = with_(eligible(), condition("hcc", code, onset=950, clinical="recurrence"))
    assert codes(run(record))[0] == "not-applicable"


@pytest.mark.parametrize(
    "value",
    [
        "Hepatocellular carcinoma excluded",
        "Hepatocellular carcinoma cannot be excluded",
        "Suspicious for hepatocellular carcinoma",
        "Possible hepatocellular carcinoma",
    ],
)
def test_doubtful_histology_does_not_confirm_hcc(value: str) -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.9"), onset=950, clinical="recurrence"),
        observation("histology", cc(LOCAL, "P", text="Pathology diagnosis"), RESECTION_DAYS - 2, valueString=value),
    )
    assert "no-confirmed-hcc" in codes(run(record))[1]


def test_histology_outside_pathology_does_not_confirm_hcc() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.9"), onset=950, clinical="recurrence"),
        imaging("ct", RESECTION_DAYS + 10, "CT liver", "Hepatocellular carcinoma"),
    )
    assert "no-confirmed-hcc" in codes(run(record))[1]


def test_a_histology_result_cannot_bring_back_a_refuted_diagnosis() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="recurrence", verification="refuted"),
        condition("icc", cc(ICD10CM, "C22.1", "Intrahepatic cholangiocarcinoma"), onset=900),
        observation("frozen", cc(LOINC, "31206-6"), RESECTION_DAYS, valueCodeableConcept=cc(ICDO3, "8170/3")),
    )
    outcome, found = codes(run(record))
    assert outcome == "not-applicable" and "no-confirmed-hcc" in found and "other-liver-cancer" in found


def test_an_active_cholangiocarcinoma_excludes_even_with_hcc() -> None:
    record = with_(eligible(), condition("icc", cc(ICD10CM, "C22.1", "Intrahepatic cholangiocarcinoma"), onset=200))
    assert codes(run(record)) == ("not-applicable", ["other-liver-cancer"])


# 2. MVI read where it is not ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        observation(
            "mvi",
            cc(LOCAL, "LVI", text="Lymphovascular invasion"),
            RESECTION_DAYS - 3,
            valueString="Present (large vessel: major branch of portal vein)",
        ),
        imaging("mvi", RESECTION_DAYS + 20, "MRI liver: MVI", "present"),  # before surgery, imaging
        observation("mvi", cc(LOCAL, "R", text="MVI risk (radiomics)"), RESECTION_DAYS - 1, valueString="positive"),
        observation("mvi", cc(LOCAL, "M", text="Microvascular invasion"), RESECTION_DAYS + 5, valueString="present"),
    ],
)
def test_mvi_not_from_the_specimen_or_not_microvascular_is_unknown(change: dict[str, Any]) -> None:
    assessment = run(with_(eligible(), change))
    assert assessment.facts["mvi"].value is None


def test_small_vessel_present_with_no_large_vessel_invasion_is_positive() -> None:
    record = with_(
        eligible(),
        observation(
            "mvi",
            cc(LOINC, "33761-8"),
            RESECTION_DAYS - 3,
            valueString="Present (small vessel); no large vessel invasion",
        ),
    )
    assert run(record).facts["mvi"].value == "positive"


def test_lymphatic_only_mvi_is_a_caution() -> None:
    record = with_(eligible(), observation("mvi", cc(LOINC, "33739-4"), RESECTION_DAYS - 3, valueString="Present"))
    assert codes(run(record)) == ("eligible", ["mvi-lymphatic"])


# 3. Portal vein tumour thrombus and spread ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        condition("pvtt", cc(LOCAL, "x", text="Portal vein tumour thrombus"), onset=70),  # before the recurrence date
        imaging("ct", 65, "CT abdomen", "Tumour thrombus in the right portal vein without biliary dilatation"),
        condition("pvtt", cc(LOCAL, "x", text="PVTT in right portal vein and no ascites"), onset=20),
        condition("pvtt", cc(LOCAL, "x", text="右门静脉癌栓形成无腹水"), onset=20),
        condition("pvtt", cc(LOCAL, "x", text="Vp3 PVTT not amenable to resection"), onset=20),
        condition("mets", cc(LOCAL, "x", text="Lung metastases without bone involvement"), onset=20),
        condition("mets", cc(LOCAL, "x", text="Bone metastasis (no fracture)"), onset=20),
        condition("mets", cc(SNOMED, "94391008", "Secondary malignant neoplasm of lung"), onset=20),
        condition("mets", cc(LOCAL, "x", text="Lung mets"), onset=20),
        condition("mets", cc(LOCAL, "x", text="Metastases to both lungs"), onset=20),
        condition("mets", cc(LOCAL, "x", text="右肺多发转移瘤"), onset=20),
        imaging("ct", 20, "CT liver", "Tumor invasion of the right portal vein"),
        imaging("ct", 20, "CT liver", "Hepatic vein invasion"),
        imaging("ct", 20, "CT liver", "门静脉右支受侵"),
        imaging("ct", 20, "CT liver", "Malignant portal vein thrombosis"),
    ],
)
def test_spread_after_the_hepatectomy_makes_it_not_bclc_b(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["stage-not-b"])


@pytest.mark.parametrize(
    "change",
    [
        imaging("ct", 20, "CT liver", "MVI present"),  # on imaging "MVI" may mean macrovascular invasion
        condition("pvtt", cc(LOCAL, "x", text="Suspected PVTT"), onset=20),
        imaging("ct", 20, "CT liver", "Portal vein thrombosis, bland or tumour?"),
    ],
)
def test_possible_spread_asks_for_the_stage(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("information-needed", ["stage"])


# 4. Recurrence over-read -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Suspected recurrence", "Possible progression", "疑似复发", "Progression-free"])
def test_doubtful_disease_status_is_not_recurrence(value: str) -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"),
        observation("progression", cc(LOINC, "97509-4"), 60, valueString=value),
    )
    assert codes(run(record)) == ("not-applicable", ["no-recurrence"])


def test_disease_status_of_another_condition_is_not_hcc_recurrence() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"),
        observation(
            "progression",
            cc(LOINC, "97509-4"),
            60,
            valueCodeableConcept=cc(SNOMED, "271299001"),
            focus=[{"reference": "Condition/prostate-cancer"}],
        ),
    )
    assert codes(run(record)) == ("not-applicable", ["no-recurrence"])


def test_a_later_hcc_record_without_a_resolved_episode_is_not_recurrence() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950),  # never resolved
        condition("visit", cc(ICD10CM, "C22.0"), onset=200),
        drop=("progression",),
    )
    assert codes(run(record)) == ("not-applicable", ["no-recurrence"])


def test_recurrence_status_within_the_residual_interval_is_not_recurrence() -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=RESECTION_DAYS - 10, clinical="recurrence"),
        drop=("progression",),
    )
    assert codes(run(record)) == ("not-applicable", ["no-recurrence"])


# 5. Margin from intent ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["R0 not achieved", "Aimed for R0", "R0 resection planned"])
def test_intent_or_negated_r0_is_not_r0(outcome: str) -> None:
    from tests.clinical_records import CPT, procedure

    record = with_(eligible(), procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, outcome=cc(text=outcome)))
    assert run(record).facts["margin"].value is None


# 6. Pregnancy and medications --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        observation("preg", cc(LOCAL, "PT", text="Pregnancy test, urine"), 30, valueString="Positive"),
        observation("preg", cc(LOCAL, "PS", text="Pregnancy status"), 30, valueString="Pregnant"),
        condition("preg", cc(LOCAL, "x", text="Positive pregnancy test"), onset=30),
    ],
)
def test_pregnancy_in_observations_and_tests(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["pregnant"])


def test_a_negative_pregnancy_test_does_not_exclude() -> None:
    change = observation("preg", cc(LOCAL, "PT", text="Pregnancy test"), 30, valueString="Negative")
    assert codes(run(with_(eligible(), change))) == ("eligible", [])


def test_a_medication_known_only_by_code_is_asked_about() -> None:
    lenvatinib = med_request("m", cc(RXNORM, "1599164"), "active")
    assert codes(run(with_(eligible(), lenvatinib))) == ("information-needed", ["data-medications"])


# 7. Stage, fitness, staleness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage",
    [
        [{"summary": cc(text="B"), "type": cc(LOCAL, "x", text="Child-Pugh class")}],
        [{"summary": cc(text="Stage B"), "type": cc(LOCAL, "x", text="Okuda stage")}],
    ],
)
def test_a_stage_from_another_system_is_not_bclc(stage: list[dict[str, Any]]) -> None:
    record = with_(
        eligible(),
        condition("hcc-2", cc(ICD10CM, "C22.0"), onset=60, stage=stage),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="resolved", abatementDateTime="2024-06-01"),
        drop=("bclc",),
    )
    assert codes(run(record)) == ("information-needed", ["stage"])


@pytest.mark.parametrize("value", ["Not BCLC B", "BCLC B? pending MDT", "Possibly BCLC B"])
def test_doubtful_staging_is_unknown(value: str) -> None:
    record = with_(eligible(), observation("bclc", cc(NCIT, "C115134"), 40, valueString=value))
    assert codes(run(record)) == ("information-needed", ["stage"])


def test_a_back_entered_staging_keeps_its_own_date() -> None:
    old = observation("bclc", cc(NCIT, "C115134"), None, valueString="BCLC B", issued="2026-11-14T10:00:00Z")
    assert codes(run(with_(eligible(), old))) == ("information-needed", ["stage"])


def test_an_old_but_active_ascites_still_excludes() -> None:
    change = condition("ascites", cc(ICD10CM, "R18.8"), onset=500)
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["decompensated"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ECOG 1-2", ("not-applicable", ["ecog"])),
        ("PS 0-1", ("eligible", ["ecog-1"])),
    ],
)
def test_ecog_ranges_take_the_worse_reading(value: str, expected: tuple[str, list[str]]) -> None:
    change = observation("ecog", cc(LOCAL, "PS", text="ECOG performance status"), 10, valueString=value)
    assert codes(run(with_(eligible(), change))) == expected


def test_fibrolamellar_hcc_is_a_caution() -> None:
    change = condition("hcc", cc(SNOMED, "253018005"), onset=950, clinical="recurrence")
    assert codes(run(with_(eligible(), change))) == ("eligible", ["fibrolamellar"])


# Second review ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["Possibly present", "Present?", "Present (focal), questionable", "可疑阳性", "疑似有"]
)
def test_doubtful_mvi_values_are_unknown(value: str) -> None:
    change = observation("mvi", cc(LOINC, "33761-8"), RESECTION_DAYS - 3, valueString=value)
    assert run(with_(eligible(), change)).facts["mvi"].value is None


@pytest.mark.parametrize("value", ["没有", "不可见", "未发现", "无"])
def test_chinese_negative_mvi_values_are_negative(value: str) -> None:
    change = observation("mvi", cc(LOINC, "33761-8"), RESECTION_DAYS - 3, valueString=value)
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["mvi-negative"])


@pytest.mark.parametrize(
    "text",
    [
        "No interval change in the right portal vein tumour thrombus",
        "No progression of the portal vein tumour thrombus",
        "No new lesions other than the known PVTT",
        "Without change in the lung metastases",
        "门静脉癌栓无明显变化",
        "门静脉右支癌栓无进展",
        "Metastatic hepatocellular carcinoma",
        "肝细胞癌伴多发转移",
        "Stage IV hepatocellular carcinoma",
        "TNM: cT2 cN0 cM1",
    ],
)
def test_findings_behind_pseudo_negations_or_without_a_site_are_spread(text: str) -> None:
    assert codes(run(with_(eligible(), imaging("ct", 20, "CT abdomen", text)))) == ("not-applicable", ["stage-not-b"])


@pytest.mark.parametrize(
    "text",
    [
        "无法排除门静脉癌栓",
        "不能排除门静脉癌栓",
        "Can't rule out PVTT",
        "Could not rule out lung metastasis",
        "Multiple pulmonary nodules suspicious for metastases",
    ],
)
def test_findings_that_cannot_be_excluded_ask_for_the_stage(text: str) -> None:
    assert codes(run(with_(eligible(), imaging("ct", 20, "CT abdomen", text)))) == ("information-needed", ["stage"])


def test_rule_out_in_a_problem_list_asks_for_the_stage() -> None:
    change = condition("ro", cc(LOCAL, "x", text="Rule out lung metastasis"), onset=20)
    assert codes(run(with_(eligible(), change))) == ("information-needed", ["stage"])


@pytest.mark.parametrize(
    "extra", [{"status": "preliminary"}, {"effectiveDateTime": None, "issued": "2026-11-20T08:00:00Z"}]
)
def test_preliminary_or_undated_spread_asks(extra: dict[str, Any]) -> None:
    finding = imaging("ct", 10, "CT abdomen", "Portal vein tumour thrombus")
    finding.update({k: v for k, v in extra.items() if v is not None})
    if extra.get("effectiveDateTime", "") is None:
        finding.pop("effectiveDateTime")
    assert codes(run(with_(eligible(), finding))) == ("information-needed", ["stage"])


@pytest.mark.parametrize(
    "value", ["Recurrence: absent", "Recurrence ruled out", "Recurrence excluded", "Recurrence-free", "未复发"]
)
def test_negated_disease_status_is_not_recurrence(value: str) -> None:
    record = with_(
        eligible(),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="remission"),
        observation("progression", cc(LOINC, "97509-4"), 60, valueString=value),
    )
    assert codes(run(record)) == ("not-applicable", ["no-recurrence"])


@pytest.mark.parametrize(
    "change",
    [
        observation(
            "path",
            cc(LOCAL, "P", text="Pathology diagnosis"),
            RESECTION_DAYS - 2,
            valueString="Combined hepatocellular-cholangiocarcinoma",
        ),
        condition(
            "hcc",
            cc(ICD10CM, "C22.0"),
            onset=950,
            clinical="recurrence",
            extension=[
                {
                    "url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior",
                    "valueCodeableConcept": cc(text="Combined hepatocellular-cholangiocarcinoma"),
                }
            ],
        ),
    ],
)
def test_pathology_saying_not_hcc_excludes(change: dict[str, Any]) -> None:
    assert "other-liver-cancer" in codes(run(with_(eligible(), change)))[1]


@pytest.mark.parametrize("text", ["Suspected hepatocellular carcinoma", "肝细胞癌？待排"])
def test_a_doubtful_hcc_code_is_not_a_diagnosis(text: str) -> None:
    record = with_(eligible(), condition("hcc", cc(ICD10CM, "C22.0", text=text), onset=950, clinical="recurrence"))
    assert "no-confirmed-hcc" in codes(run(record))[1]


@pytest.mark.parametrize(
    "change",
    [
        observation("preg", cc(LOCAL, "PS", text="Pregnancy status"), 30, valueBoolean=True),
        observation("preg", cc(LOCAL, "PT", text="Pregnancy test"), None, valueString="Positive"),
        condition("preg", cc(LOCAL, "x", text="Elderly primigravida, 12 weeks"), onset=30),
    ],
)
def test_more_pregnancy_records(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["pregnant"])


@pytest.mark.parametrize(
    "change",
    [
        imaging("us", 5, "Ultrasound abdomen", "Moderate ascites"),
        observation("ascites", cc(LOCAL, "A", text="Ascites"), 5, valueString="Present"),
        condition("ascites", cc(ICD10CM, "R18.0"), onset=20),
        condition("hf", cc(ICD10CM, "K72.10"), onset=20),
    ],
)
def test_decompensation_in_observations_and_code_families(change: dict[str, Any]) -> None:
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["decompensated"])


@pytest.mark.parametrize("drug", ["艾瑞卡", "达伯舒 (sintilimab)", "FOLFOX4", "Sunitinib 37.5 mg", "泽普生"])
def test_other_systemic_therapy_under_other_names(drug: str) -> None:
    from tests.clinical_records import med_statement

    change = med_statement("m", cc(LOCAL, "x", text=drug), "completed")
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["other-systemic"])


def test_mvi_on_imaging_without_a_category_is_not_pathology() -> None:
    change = observation("mvi", cc(LOCAL, "CT", text="CT abdomen: MVI"), RESECTION_DAYS - 10, valueString="present")
    assert run(with_(eligible(), change)).facts["mvi"].value is None


def test_a_recent_poor_karnofsky_excludes() -> None:
    change = observation("kps", cc(LOINC, "89243-0"), 5, valueInteger=50)
    assert codes(run(with_(eligible(), change))) == ("not-applicable", ["ecog"])


def test_staged_beyond_b_since_the_recurrence_then_b_asks() -> None:
    record = with_(eligible(), observation("bclc-c", cc(NCIT, "C115134"), 50, valueString="BCLC C"))
    assert codes(run(record)) == ("information-needed", ["stage"])


@pytest.mark.parametrize("value", ["BCLC B → C", "BCLC B progressed to C"])
def test_a_changing_stage_asks(value: str) -> None:
    assert codes(run(with_(eligible(), observation("bclc", cc(NCIT, "C115134"), 40, valueString=value)))) == (
        "information-needed",
        ["stage"],
    )


def test_future_dated_staging_is_not_current() -> None:
    record = with_(eligible(), observation("bclc", cc(NCIT, "C115134"), -30, valueString="BCLC B"))
    assert codes(run(record)) == ("information-needed", ["stage"])


def test_month_precision_recurrence_must_be_clearly_after_surgery() -> None:
    from tests.clinical_records import CPT, procedure

    record = with_(
        eligible(),
        procedure("hepatectomy", cc(CPT, "47120"), 183, outcome=cc(text="R0 resection")),
        condition("hcc", cc(ICD10CM, "C22.0"), onset=950, clinical="resolved", abatementDateTime="2026-05-26"),
        condition("hcc-2", cc(ICD10CM, "C22.0"), None, onsetDateTime="2026-06"),
        observation("mvi", cc(LOINC, "33761-8"), 180, valueCodeableConcept=cc(SNOMED, "52101004")),
        drop=("progression",),
    )
    assert codes(run(record)) == ("not-applicable", ["no-recurrence"])  # 2026-06 may be a week after 2026-05-25


def test_another_primary_cancer_is_a_caution() -> None:
    change = condition("prostate", cc(ICD10CM, "C61", "Malignant neoplasm of prostate"), onset=300)
    assert codes(run(with_(eligible(), change))) == ("eligible", ["other-cancer"])
