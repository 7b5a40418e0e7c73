"""Write the fixture patients of ``fhir_fixtures/`` (FHIR R4 transaction Bundles) and their manifest.

Run ``python fhir_fixtures/generate.py`` after changing a scenario; a test fails when the committed files differ
from what this script writes. Every date is relative to ``AS_OF`` (the Bundle's ``timestamp``): evaluating a
Bundle uses that date as "today", and ``sortace-cds fixtures`` shifts the dates to the real today before it
uploads or sends them, so the scenarios keep their meaning as time passes.

Each scenario starts from a realistic record (noise: other problems, labs, vital signs, an antiviral, older and
duplicate records) and changes what the scenario is about.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

AS_OF = date(2026, 11, 24)
HERE = Path(__file__).resolve().parent

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
HISTOLOGY_EXT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"
LOCAL = "urn:oid:2.16.840.1.113883.3.9999.1"  # an example local code system of a hospital


def ago(days: int) -> str:
    return (AS_OF - timedelta(days=days)).isoformat()


def concept(
    system: str | None = None, code: str | None = None, display: str | None = None, text: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if code:
        coding: dict[str, Any] = {"system": system, "code": code}
        if display:
            coding["display"] = display
        out["coding"] = [coding]
    if text:
        out["text"] = text
    return out


class Record:
    """One patient's resources, built with readable helpers; ids are prefixed with the patient id."""

    def __init__(self, pid: str, birth: str, gender: str, family: str, given: str) -> None:
        self.pid = pid
        self.resources: list[dict[str, Any]] = [
            {
                "resourceType": "Patient",
                "id": pid,
                "gender": gender,
                "birthDate": birth,
                "name": [{"family": family, "given": [given]}],
            }
        ]

    @property
    def patient(self) -> dict[str, Any]:
        return self.resources[0]

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        resource["id"] = f"{self.pid}-{resource['id']}"
        self.resources.append(resource)
        return resource

    def remove(self, key: str) -> None:
        self.resources = [r for r in self.resources if r.get("id") != f"{self.pid}-{key}"]

    def get(self, key: str) -> dict[str, Any]:
        return next(r for r in self.resources if r.get("id") == f"{self.pid}-{key}")

    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def condition(
        self,
        key: str,
        code: dict[str, Any],
        onset: str | None,
        clinical: str | None = "active",
        verification: str | None = "confirmed",
        **extra: Any,
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": "Condition", "id": key, "subject": self.subject(), "code": code}
        if clinical:
            resource["clinicalStatus"] = concept(CLINICAL, clinical)
        if verification:
            resource["verificationStatus"] = concept(VERIFICATION, verification)
        if onset:
            resource["onsetDateTime"] = onset
        resource.update(extra)
        return self.add(resource)

    def procedure(
        self, key: str, code: dict[str, Any], performed: str | None, status: str = "completed", **extra: Any
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": key,
            "status": status,
            "subject": self.subject(),
            "code": code,
        }
        if performed:
            resource["performedDateTime"] = performed
        resource.update(extra)
        return self.add(resource)

    def observation(
        self,
        key: str,
        code: dict[str, Any],
        effective: str,
        status: str = "final",
        category: str = "laboratory",
        **value: Any,
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": key,
            "status": status,
            "category": [concept(OBS_CATEGORY, category)],
            "code": code,
            "subject": self.subject(),
            "effectiveDateTime": effective,
        }
        resource.update(value)
        return self.add(resource)

    def medication_request(
        self, key: str, medication: dict[str, Any], status: str, authored: str, intent: str = "order", **extra: Any
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": key,
            "status": status,
            "intent": intent,
            "medicationCodeableConcept": medication,
            "subject": self.subject(),
            "authoredOn": authored,
        }
        resource.update(extra)
        return self.add(resource)

    def medication_statement(
        self, key: str, medication: dict[str, Any], status: str, start: str, end: str | None = None
    ) -> dict[str, Any]:
        period = {"start": start, **({"end": end} if end else {})}
        return self.add(
            {
                "resourceType": "MedicationStatement",
                "id": key,
                "status": status,
                "medicationCodeableConcept": medication,
                "subject": self.subject(),
                "effectivePeriod": period,
            }
        )

    def bundle(self) -> dict[str, Any]:
        entries = [
            {
                "fullUrl": f"urn:uuid:{r['resourceType'].lower()}-{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in self.resources
        ]
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "timestamp": f"{AS_OF.isoformat()}T09:00:00Z",
            "entry": entries,
        }


def add_noise(rec: Record) -> None:
    """What a real chart holds besides the facts that matter: other problems and cancers, labs, vitals, drugs."""
    rec.condition("htn", concept(ICD10CM, "I10", "Essential (primary) hypertension"), ago(3650))
    rec.condition("hbv", concept(ICD10CM, "B18.1", "Chronic viral hepatitis B without delta-agent"), ago(5400))
    rec.condition("cirrhosis", concept(ICD10CM, "K74.60", "Unspecified cirrhosis of liver"), ago(1900))
    rec.condition(
        "dm",
        concept(ICD10CM, "E11.9", "Type 2 diabetes mellitus without complications"),
        ago(2500),
        clinical="resolved",
        abatementDateTime=ago(800),
    )
    for i, days in enumerate((700, 400, 90, 20)):
        rec.observation(
            f"bili-{i}",
            concept(LOINC, "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma"),
            ago(days),
            valueQuantity={
                "value": 0.9 + i / 10,
                "unit": "mg/dL",
                "system": "http://unitsofmeasure.org",
                "code": "mg/dL",
            },
        )
        rec.observation(
            f"afp-{i}",
            concept(LOINC, "1834-1", "Alpha-1-Fetoprotein [Mass/volume] in Serum or Plasma"),
            ago(days),
            valueQuantity={
                "value": 12 + 40 * i,
                "unit": "ng/mL",
                "system": "http://unitsofmeasure.org",
                "code": "ng/mL",
            },
        )
        rec.observation(
            f"sbp-{i}",
            concept(LOINC, "8480-6", "Systolic blood pressure"),
            ago(days),
            category="vital-signs",
            valueQuantity={"value": 128 + i, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        )
    rec.observation(
        "inr-0",
        concept(LOINC, "6301-6", "INR in Platelet poor plasma by Coagulation assay"),
        ago(20),
        valueQuantity={"value": 1.1, "unit": "{INR}", "system": "http://unitsofmeasure.org", "code": "{INR}"},
    )
    rec.medication_request("entecavir", concept(text="Entecavir 0.5 mg tablet"), "active", ago(3000))
    rec.medication_statement("metformin", concept(text="Metformin 500 mg tablet"), "stopped", ago(2500), ago(800))


# ---------------------------------------------------------------------------------------------------------------
# The base case: recurrent BCLC B HCC after R0 hepatectomy with MVI, everything recorded, ICD-10-CM / CPT / LOINC.
# ---------------------------------------------------------------------------------------------------------------


def base(pid: str, birth: str = "1966-03-14", gender: str = "male") -> Record:
    rec = Record(pid, birth, gender, "Zhang", "Wei")
    add_noise(rec)
    rec.condition(
        "hcc",
        concept(ICD10CM, "C22.0", "Liver cell carcinoma", "Hepatocellular carcinoma"),
        ago(1380),
        clinical="recurrence",
    )
    rec.procedure(
        "hepatectomy",
        concept(CPT, "47120", text="Partial hepatectomy (right posterior sectionectomy)"),
        ago(1340),
        outcome=concept(text="R0 resection"),
    )
    rec.observation(
        "mvi",
        concept(LOINC, "33761-8", text="Microvascular invasion (small vessel invasion)"),
        ago(1335),
        valueCodeableConcept=concept(SNOMED, "52101004", "Present"),
    )
    rec.observation(
        "margin",
        concept(SNOMED, "396631001", "Surgical margin observable"),
        ago(1335),
        valueCodeableConcept=concept(SNOMED, "260385009", "Negative"),
    )
    rec.observation(
        "recurrence-status",
        concept(LOINC, "97509-4", "Cancer disease progression"),
        ago(65),
        category="exam",
        valueCodeableConcept=concept(SNOMED, "271299001", "Patient's condition worsened"),
    )
    rec.observation(
        "bclc",
        concept(NCIT, "C115134", "BCLC Stage"),
        ago(50),
        category="exam",
        valueCodeableConcept=concept(text="BCLC stage B (3 nodules, largest 4.2 cm; no PVTT, no extrahepatic spread)"),
    )
    rec.observation(
        "child-pugh",
        concept(LOCAL, "CP-CLASS", text="Child-Pugh classification"),
        ago(15),
        category="exam",
        valueString="Class A (5 points)",
    )
    rec.observation(
        "ecog", concept(LOINC, "89247-1", "ECOG Performance Status score"), ago(15), category="survey", valueInteger=0
    )
    # A duplicate of the diagnosis from the claims feed, and an old CT report-like observation.
    rec.condition("hcc-claims", concept(ICD10CM, "C22.0", "Liver cell carcinoma"), ago(1380), clinical="recurrence")
    return rec


Scenario = tuple[str, str, Callable[[], Record], dict[str, Any]]


def eligible_chinese() -> Record:
    rec = Record("p-elig-cn", "1954-08-02", "male", "Li", "Ming")
    add_noise(rec)
    rec.condition(
        "hcc-first",
        concept(SNOMED, "109841003", "Liver cell carcinoma", "肝细胞癌"),
        ago(1600),
        clinical="resolved",
        abatementDateTime=ago(1560),
    )
    rec.condition(
        "hcc-recurrence", concept(SNOMED, "109841003", "Liver cell carcinoma", "肝细胞癌（术后复发）"), ago(70)
    )
    rec.procedure(
        "hepatectomy",
        concept(ICD9CM, "50.22", text="肝部分切除术"),
        ago(1560),
        outcome=concept(text="R0切除，切缘阴性"),
    )
    rec.observation("mvi", concept(LOCAL, "PATH-MVI", text="微血管侵犯（MVI）分级"), ago(1555), valueString="M2")
    rec.observation(
        "cnlc", concept(LOCAL, "CNLC", text="中国肝癌分期（CNLC）"), ago(60), category="exam", valueString="CNLC IIb期"
    )
    rec.observation(
        "child-pugh",
        concept(LOCAL, "CP", text="肝功能Child-Pugh分级"),
        ago(10),
        category="exam",
        valueString="A级（6分）",
    )
    rec.observation(
        "ecog", concept(LOINC, "89247-1", "ECOG Performance Status score"), ago(10), category="survey", valueInteger=1
    )
    return rec


def eligible_icdo3() -> Record:
    rec = Record("p-elig-icdo3", "1948-01-20", "female", "Garcia", "Ana")
    add_noise(rec)
    stage_obs = f"Observation/{rec.pid}-bclc"
    rec.condition(
        "hcc",
        concept(ICD10CM, "C22.9", "Malignant neoplasm of liver, not specified as primary or secondary"),
        ago(2000),
        clinical="relapse",
        extension=[
            {"url": HISTOLOGY_EXT, "valueCodeableConcept": concept(ICDO3, "8170/3", "Hepatocellular carcinoma, NOS")}
        ],
        stage=[
            {
                "summary": concept(text="BCLC B"),
                "type": concept(NCIT, "C115132", "Hepatocellular Carcinoma by BCLC Stage"),
                "assessment": [{"reference": stage_obs}],
            }
        ],
    )
    rec.procedure("hepatectomy", concept(ICD10PCS, "0FB00ZZ", "Excision of Liver, Open Approach"), ago(1900))
    rec.observation(
        "mvi",
        concept(LOINC, "33739-4", "Lymphatic.small vessel.invasion [Identifier] in Specimen"),
        ago(1895),
        valueString="Present (small vessel)",
    )
    rec.observation(
        "margin",
        concept(LOINC, "33737-8", "Distance of tumor from closest margin"),
        ago(1895),
        valueQuantity={"value": 8, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"},
    )
    rec.observation(
        "recurrence-status",
        concept(LOINC, "97509-4", "Cancer disease progression"),
        ago(80),
        category="exam",
        valueCodeableConcept=concept(SNOMED, "271299001", "Patient's condition worsened"),
    )
    rec.observation(
        "bclc",
        concept(NCIT, "C115134", "BCLC Stage"),
        ago(45),
        category="exam",
        method=concept(NCIT, "C115132", "Hepatocellular Carcinoma by BCLC Stage"),
        valueString="Stage B",
    )
    rec.observation(
        "child-pugh", concept(LOCAL, "CP-SCORE", text="Child-Pugh score"), ago(12), category="exam", valueInteger=7
    )
    rec.observation(
        "ecog",
        concept(LOINC, "89247-1", "ECOG Performance Status score"),
        ago(12),
        category="survey",
        valueCodeableConcept=concept(LOINC, "LA9622-7", "Fully active"),
    )
    rec.procedure("tace", concept(CPT, "37243", text="cTACE: doxorubicin 50 mg with lipiodol"), ago(30))
    return rec


def modified(pid: str, change: Callable[[Record], None], **base_args: Any) -> Callable[[], Record]:
    def build() -> Record:
        rec = base(pid, **base_args)
        change(rec)
        return rec

    return build


def _set(key: str, **fields: Any) -> Callable[[Record], None]:
    """Change fields of one resource; a field set to None is removed."""

    def change(rec: Record) -> None:
        resource = rec.get(key)
        for name, value in fields.items():
            if value is None:
                resource.pop(name, None)
            else:
                resource[name] = value

    return change


def _all(*changes: Callable[[Record], None]) -> Callable[[Record], None]:
    def change(rec: Record) -> None:
        for c in changes:
            c(rec)

    return change


def _remove(*keys: str) -> Callable[[Record], None]:
    def change(rec: Record) -> None:
        for key in keys:
            rec.remove(key)

    return change


def _with(method: str, *args: Any, **kwargs: Any) -> Callable[[Record], None]:
    """Add a resource with one of Record's helpers (``_with("condition", key, code, onset)``)."""

    def change(rec: Record) -> None:
        getattr(rec, method)(*args, **kwargs)

    return change


def _add_condition(key: str, code: dict[str, Any], days: int, **extra: Any) -> Callable[[Record], None]:
    return _with("condition", key, code, ago(days), **extra)


def _add_obs(key: str, code: dict[str, Any], days: int, **value: Any) -> Callable[[Record], None]:
    return _with("observation", key, code, ago(days), category="exam", **value)


def own_proposal(rec: Record) -> None:
    rec.medication_request(
        "sortace-proposal",
        concept(RXNORM, "597747", text="Sorafenib 200 mg tablet"),
        "draft",
        ago(3),
        intent="proposal",
        meta={"tag": [{"system": "urn:sortace-cds:tag", "code": "sor-tace-proposal"}]},
    )


SCENARIOS: list[Scenario] = [
    # Eligible, in several encodings.
    (
        "eligible-icd10-loinc",
        "Eligible: ICD-10-CM C22.0 with clinicalStatus recurrence, CPT 47120, LOINC MVI present, "
        "SNOMED margin negative, BCLC B (NCIt), Child-Pugh A5, ECOG 0",
        lambda: base("p-elig-icd10"),
        {"outcome": "eligible", "cautions": []},
    ),
    (
        "eligible-chinese-text",
        "Eligible: SNOMED 109841003 with Chinese text, second HCC Condition after a resolved one, "
        "ICD-9-CM 50.22, MVI M2, margin in Procedure.outcome (R0切除), CNLC IIb, Child-Pugh A6, ECOG 1 (caution)",
        eligible_chinese,
        {"outcome": "eligible", "cautions": ["ecog-1"]},
    ),
    (
        "eligible-icdo3-cautions",
        "Eligible with cautions: C22.9 + ICD-O-3 8170/3 histology extension, relapse status, "
        "ICD-10-PCS 0FB00ZZ, LOINC 33739-4 (lymphatic small-vessel invasion: a caution), margin distance 8 mm, stage "
        "on Condition.stage, age 78, Child-Pugh B7, TACE since recurrence",
        eligible_icdo3,
        {"outcome": "eligible", "cautions": ["age-over-range", "child-pugh-b", "tace-given", "mvi-lymphatic"]},
    ),
    (
        "suppressed-own-proposal",
        "Eligible, but our SOR-TACE proposal is already in the record: no card",
        modified("p-own-proposal", own_proposal),
        {"outcome": "eligible", "cautions": [], "suppressed": True},
    ),
    # Information needed.
    (
        "info-mvi-missing",
        "Information needed: no MVI result on the resection pathology",
        modified("p-info-mvi", _remove("mvi")),
        {"outcome": "information-needed", "missing": ["mvi"]},
    ),
    (
        "info-stale-stage",
        "Information needed: only the first diagnosis' stage (BCLC A on the original Condition) and an "
        "ECOG from 5 months ago",
        modified(
            "p-info-stale",
            _all(
                _remove("bclc"),
                _set("ecog", effectiveDateTime=ago(150)),
                _set(
                    "hcc",
                    stage=[
                        {
                            "summary": concept(text="BCLC A"),
                            "type": concept(NCIT, "C115132", "Hepatocellular Carcinoma by BCLC Stage"),
                        }
                    ],
                ),
            ),
        ),
        {"outcome": "information-needed", "missing": ["stage", "ecog"]},
    ),
    (
        "info-many-missing",
        "Information needed: HCC, hepatectomy and recurrence only; MVI, margin, stage, Child-Pugh and ECOG all missing",
        modified(
            "p-info-many",
            _all(_remove("mvi", "margin", "bclc", "child-pugh", "ecog"), _set("hepatectomy", outcome=None)),
        ),
        {"outcome": "information-needed", "missing": ["mvi", "margin", "stage", "child_pugh", "ecog"]},
    ),
    (
        "info-possible-pvtt",
        "Information needed: BCLC B, but a portal vein thrombosis (I81) not said to be tumour since the recurrence",
        modified("p-info-pvt", _add_condition("pvt", concept(ICD10CM, "I81", "Portal vein thrombosis"), 40)),
        {"outcome": "information-needed", "missing": ["stage"]},
    ),
    (
        "info-preliminary-mvi",
        "Information needed: the MVI result is preliminary",
        modified("p-info-prelim", _set("mvi", status="preliminary")),
        {"outcome": "information-needed", "missing": ["mvi"]},
    ),
    # Not applicable: outside the trial population or unsafe.
    (
        "na-mvi-negative",
        "Not applicable: MVI M0 (negative)",
        modified("p-na-mvi-neg", _set("mvi", valueCodeableConcept=None, valueString="M0 (no microvascular invasion)")),
        {"outcome": "not-applicable", "exclusions": ["mvi-negative"]},
    ),
    (
        "na-margin-r1",
        "Not applicable: R1 resection",
        modified(
            "p-na-r1",
            _all(_remove("margin"), _set("hepatectomy", outcome=concept(text="R1 resection, margin involved"))),
        ),
        {"outcome": "not-applicable", "exclusions": ["margin-involved"]},
    ),
    (
        "na-pvtt",
        "Not applicable: portal vein tumour thrombus after the recurrence (BCLC C)",
        modified(
            "p-na-pvtt", _add_condition("pvtt", concept(text="Portal vein tumor thrombus (PVTT), right branch"), 30)
        ),
        {"outcome": "not-applicable", "exclusions": ["stage-not-b"]},
    ),
    (
        "na-extrahepatic",
        "Not applicable: lung metastases (C78.0x)",
        modified(
            "p-na-ehs",
            _add_condition("lung-mets", concept(ICD10CM, "C78.01", "Secondary malignant neoplasm of right lung"), 35),
        ),
        {"outcome": "not-applicable", "exclusions": ["stage-not-b"]},
    ),
    (
        "na-bclc-a",
        "Not applicable: recurrence staged BCLC A (curative options first)",
        modified("p-na-bclc-a", _set("bclc", valueCodeableConcept=concept(text="BCLC stage A (single 2.5 cm nodule)"))),
        {"outcome": "not-applicable", "exclusions": ["stage-not-b"]},
    ),
    (
        "na-child-pugh-c",
        "Not applicable: Child-Pugh C10",
        modified("p-na-cp-c", _set("child-pugh", valueString="Class C (10 points)")),
        {"outcome": "not-applicable", "exclusions": ["child-pugh"]},
    ),
    (
        "na-decompensated",
        "Not applicable: ascites (R18.8) in the last 6 months",
        modified("p-na-ascites", _add_condition("ascites", concept(ICD10CM, "R18.8", "Other ascites"), 25)),
        {"outcome": "not-applicable", "exclusions": ["decompensated"]},
    ),
    (
        "na-ecog-2",
        "Not applicable: ECOG 2",
        modified("p-na-ecog2", _set("ecog", valueInteger=2)),
        {"outcome": "not-applicable", "exclusions": ["ecog"]},
    ),
    (
        "na-sorafenib-current",
        "Not applicable: already on sorafenib (RxNorm 597747, active)",
        modified(
            "p-na-sor-now",
            _with(
                "medication_request",
                "sorafenib",
                concept(RXNORM, "597747", text="Sorafenib 200 mg tablet"),
                "active",
                ago(20),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["sorafenib-current"]},
    ),
    (
        "na-sorafenib-earlier",
        "Not applicable: earlier sorafenib (多吉美, MedicationStatement completed)",
        modified(
            "p-na-sor-before",
            _with(
                "medication_statement",
                "sorafenib",
                concept(text="索拉非尼片（多吉美）0.2 g"),
                "completed",
                ago(900),
                ago(700),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["sorafenib-earlier"]},
    ),
    (
        "na-other-systemic",
        "Not applicable: earlier lenvatinib",
        modified(
            "p-na-lenvatinib",
            _with("medication_request", "lenvatinib", concept(text="Lenvatinib 8 mg capsule"), "stopped", ago(400)),
        ),
        {"outcome": "not-applicable", "exclusions": ["other-systemic"]},
    ),
    (
        "na-pregnant",
        "Not applicable: pregnancy (Z33.1)",
        modified(
            "p-na-pregnant",
            _add_condition("pregnancy", concept(ICD10CM, "Z33.1", "Pregnant state, incidental"), 60),
            birth="1990-05-05",
            gender="female",
        ),
        {"outcome": "not-applicable", "exclusions": ["pregnant"]},
    ),
    (
        "na-under-18",
        "Not applicable: 16 years old (fibrolamellar HCC)",
        modified(
            "p-na-teen",
            _set("hcc", code=concept(SNOMED, "253018005", "Fibrolamellar hepatocellular carcinoma")),
            birth="2010-06-01",
        ),
        {"outcome": "not-applicable", "exclusions": ["under-age"]},
    ),
    (
        "na-deceased",
        "Not applicable: deceased",
        modified("p-na-deceased", lambda rec: rec.patient.update(deceasedDateTime=ago(5))),
        {"outcome": "not-applicable", "exclusions": ["deceased"]},
    ),
    (
        "na-transplant",
        "Not applicable: liver transplant (CPT 47135, Z94.4) after the hepatectomy",
        modified(
            "p-na-transplant",
            _all(
                _with(
                    "procedure", "transplant", concept(CPT, "47135", text="Orthotopic liver transplantation"), ago(300)
                ),
                _add_condition("transplant-status", concept(ICD10CM, "Z94.4", "Liver transplant status"), 300),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["transplant"]},
    ),
    # Tricky negatives.
    (
        "na-macro-mvi",
        "Not applicable: 'MVI' meaning macrovascular invasion on imaging after the recurrence; no "
        "microvascular invasion on pathology",
        modified(
            "p-na-macro",
            _all(
                _remove("mvi"),
                _add_obs(
                    "imaging-mvi",
                    concept(LOCAL, "CT-MVI", text="Macrovascular invasion (MVI)"),
                    45,
                    valueString="Present: tumour invading the right portal vein",
                ),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["stage-not-b"]},
    ),
    (
        "na-hcc-entered-in-error",
        "Not applicable: the only HCC diagnoses are entered-in-error or refuted",
        modified(
            "p-na-eie",
            _all(
                _set("hcc", verificationStatus=concept(VERIFICATION, "entered-in-error"), clinicalStatus=None),
                _set("hcc-claims", verificationStatus=concept(VERIFICATION, "refuted")),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["no-confirmed-hcc"]},
    ),
    (
        "na-hcc-provisional",
        "Not applicable: HCC recorded only as provisional",
        modified(
            "p-na-provisional",
            _all(_remove("hcc-claims"), _set("hcc", verificationStatus=concept(VERIFICATION, "provisional"))),
        ),
        {"outcome": "not-applicable", "exclusions": ["no-confirmed-hcc"]},
    ),
    (
        "na-z85-history-only",
        "Not applicable: HCC resolved after the hepatectomy, Z85.05 history code and nothing else",
        modified(
            "p-na-z85",
            _all(
                _remove("hcc-claims", "recurrence-status", "bclc"),
                _set("hcc", clinicalStatus=concept(CLINICAL, "resolved"), abatementDateTime=ago(1340)),
                _add_condition(
                    "history", concept(ICD10CM, "Z85.05", "Personal history of malignant neoplasm of liver"), 1000
                ),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["no-recurrence"]},
    ),
    (
        "na-cholangiocarcinoma",
        "Not applicable: intrahepatic cholangiocarcinoma (C22.1), not HCC",
        modified(
            "p-na-icc",
            _all(
                _remove("hcc-claims"),
                _set(
                    "hcc",
                    code=concept(
                        ICD10CM, "C22.1", "Intrahepatic bile duct carcinoma", "Intrahepatic cholangiocarcinoma"
                    ),
                ),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["no-confirmed-hcc", "other-liver-cancer"]},
    ),
    (
        "na-no-hepatectomy",
        "Not applicable: de novo multinodular HCC treated with TACE, never resected",
        modified(
            "p-na-no-resection",
            _all(
                _remove("hepatectomy", "mvi", "margin"),
                _with("procedure", "tace", concept(CPT, "37243", text="TACE"), ago(40)),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["no-hepatectomy"]},
    ),
    (
        "na-residual-not-recurrence",
        "Not applicable: a second HCC record 10 days after surgery (residual tumour, not "
        "recurrence) and no later progression",
        modified(
            "p-na-residual",
            _all(
                _remove("hcc-claims", "recurrence-status"),
                _set("hcc", clinicalStatus=concept(CLINICAL, "remission")),
                _add_condition("hcc-post-op", concept(ICD10CM, "C22.0", "Liver cell carcinoma"), 1330),
            ),
        ),
        {"outcome": "not-applicable", "exclusions": ["no-recurrence"]},
    ),
]


def write_all() -> None:
    manifest = []
    for name, description, build, expected in SCENARIOS:
        rec = build()
        bundle = rec.bundle()
        (HERE / f"{name}.json").write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        manifest.append({"file": f"{name}.json", "patient": rec.pid, "description": description, **expected})
    payload = {"as_of": AS_OF.isoformat(), "fixtures": manifest}
    (HERE / "manifest.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (HERE / "README.md").write_text(_readme(manifest), encoding="utf-8")
    _write_requests()


def _write_requests() -> None:
    """CDS Hooks patient-view request examples (what an EHR POSTs), with the prefetch an EHR would send."""
    import uuid

    directory = HERE / "requests"
    directory.mkdir(exist_ok=True)
    keys = {
        "patient": "Patient",
        "conditions": "Condition",
        "procedures": "Procedure",
        "observations": "Observation",
        "medicationRequests": "MedicationRequest",
        "medicationStatements": "MedicationStatement",
    }

    def request(rec: Record, name: str, overrides: dict[str, Any]) -> None:
        prefetch: dict[str, Any] = {}
        for key, resource_type in keys.items():
            found = [r for r in rec.resources if r["resourceType"] == resource_type]
            prefetch[key] = (
                found[0]
                if key == "patient"
                else {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": len(found),
                    "entry": [
                        {
                            "fullUrl": f"http://127.0.0.1:8081/fhir/{r['resourceType']}/{r['id']}",
                            "resource": r,
                            "search": {"mode": "match"},
                        }
                        for r in found
                    ],
                }
            )
        prefetch.update(overrides)
        body = {
            "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sortace-cds/{name}")),
            "hook": "patient-view",
            "context": {"userId": "Practitioner/dr-li", "patientId": rec.pid},
            "prefetch": prefetch,
        }
        (directory / f"{name}.json").write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    request(base("p-elig-icd10"), "eligible", {})
    request(eligible_chinese(), "eligible-chinese", {})
    request(
        modified(
            "p-na-icc",
            _all(
                _remove("hcc-claims"), _set("hcc", code=concept(ICD10CM, "C22.1", "Intrahepatic bile duct carcinoma"))
            ),
        )(),
        "not-applicable",
        {},
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "The EHR's Observation search timed out"}],
    }
    request(
        base("p-elig-icd10"),
        "information-needed-null-and-outcome",
        {"medicationStatements": None, "observations": outcome},
    )


def _readme(manifest: list[dict[str, Any]]) -> str:
    lines = [
        "# Fixture patients",
        "",
        "FHIR R4 transaction Bundles, one patient each, written by `generate.py` (edit that, then run "
        "`python fhir_fixtures/generate.py`).",
        f"Dates are relative to {AS_OF.isoformat()} (each Bundle's `timestamp`): `sortace-cds evaluate FILE` "
        "evaluates a Bundle as of that date; `sortace-cds fixtures upload` and `sortace-cds fixtures request` move "
        "every date to today first.",
        "",
        "| File | Patient | Expected outcome | Codes | Scenario |",
        "|---|---|---|---|---|",
    ]
    for item in manifest:
        codes = ", ".join(item.get("exclusions", []) + item.get("missing", []) + item.get("cautions", []))
        outcome = item["outcome"] + (" (card suppressed)" if item.get("suppressed") else "")
        lines.append(f"| `{item['file']}` | `{item['patient']}` | {outcome} | {codes} | {item['description']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    write_all()
