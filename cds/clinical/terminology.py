"""Value sets as data: codes per system, code prefixes and text patterns, read from ``cards/terminology.toml``.

A deployment extends them with its own TOML files of the same shape (``clinical.terminology_extensions``):
lists are appended, so a site adds its local codes and phrasings without editing ours. Codes are compared after
normalisation (upper case, no dots or spaces), so ``C22.0``, ``c220`` and ``C22.0 `` are the same code and the
Chinese national extensions such as ``C22.0x001`` match the prefix ``C22.0``.

Text matching works clause by clause and honours negation cues in the clause ("no PVTT", "未见癌栓").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds.clinical.fhirview import codings, describe_coding, texts

_FLAGS = re.IGNORECASE | re.UNICODE
# Coded elements carry short texts; matching is cut off here so that a pathological string costs bounded time.
MAX_TEXT = 20_000


def normalize_code(code: str) -> str:
    return re.sub(r"[.\s]", "", code).upper()


@dataclass(frozen=True)
class Match:
    """What matched: a coding (``kind == 'code'``) or a phrase in the text."""

    kind: str
    detail: str
    negated: bool = False


@dataclass(frozen=True)
class Concept:
    """One value set: codes and prefixes per system URI, text patterns, and phrases that disqualify a text."""

    name: str
    codes: Mapping[str, frozenset[str]]
    prefixes: Mapping[str, tuple[str, ...]]
    text: tuple[re.Pattern[str], ...]
    exclude_text: tuple[re.Pattern[str], ...]
    negation: tuple[re.Pattern[str], ...]
    clause_split: re.Pattern[str]

    def match_coding(self, system: str, code: str) -> bool:
        norm = normalize_code(code)
        if norm in self.codes.get(system, ()):
            return True
        return any(norm.startswith(p) for p in self.prefixes.get(system, ()))

    def match(self, concept: Any, extra_texts: Sequence[str] = ()) -> Match | None:
        """Match a CodeableConcept: a coding wins; otherwise an affirmed (non-negated) phrase in its text.

        A text that also contains an exclusion phrase ("history of", "cholangiocarcinoma") never matches, even
        when a coding does: the words written by a clinician qualify the code.
        """
        strings = [*texts(concept), *extra_texts]
        if self.excluded(strings):
            return None
        for system, code, display in codings(concept):
            if self.match_coding(system, code):
                return Match("code", describe_coding(system, code, display))
        return self.match_text(strings)

    def match_text(self, strings: Iterable[str]) -> Match | None:
        """The first affirmed mention in ``strings``; a negated mention only if nothing is affirmed."""
        negated: Match | None = None
        for string in strings:
            for clause in self.clause_split.split(string[:MAX_TEXT]):
                if not any(p.search(clause) for p in self.text):
                    continue
                snippet = clause.strip()[:120]
                if any(n.search(clause) for n in self.negation):
                    negated = negated or Match("text", f"'{snippet}'", negated=True)
                    continue
                if not any(p.search(clause) for p in self.exclude_text):
                    return Match("text", f"'{snippet}'")
        return negated

    def excluded(self, strings: Iterable[str]) -> bool:
        return any(p.search(s[:MAX_TEXT]) for s in strings for p in self.exclude_text)


@dataclass(frozen=True)
class Classifier:
    """Maps a value (coding or text) to one of several labels, tried in the order the data file lists them."""

    name: str
    labels: tuple[tuple[str, Concept], ...]

    def classify(self, concept: Any = None, strings: Sequence[str] = ()) -> list[tuple[str, Match]]:
        """Every label whose codes or (affirmed) text match, in declared order."""
        found: list[tuple[str, Match]] = []
        for label, concept_set in self.labels:
            match = concept_set.match(concept, strings)
            if match and not match.negated:
                found.append((label, match))
        return found

    def first(self, concept: Any = None, strings: Sequence[str] = ()) -> tuple[str, Match] | None:
        found = self.classify(concept, strings)
        return found[0] if found else None


@dataclass(frozen=True)
class Terminology:
    concepts: Mapping[str, Concept]
    classifiers: Mapping[str, Classifier]
    own_tag: tuple[str, str]

    def concept(self, name: str) -> Concept:
        return self.concepts[name]

    def classifier(self, name: str) -> Classifier:
        return self.classifiers[name]


def build_terminology(data: Mapping[str, Any], extensions: Sequence[Mapping[str, Any]] = ()) -> Terminology:
    """Compile the value-set data (plus deployment extensions) into matchers.

    :raise ValueError: an unknown system alias, a bad regular expression or a missing section.
    """
    merged = _merge_all(data, extensions)
    systems: dict[str, list[str]] = merged["systems"]
    negation = tuple(_compile(p) for p in merged["negation"]["cues"])
    split = re.compile(merged["negation"]["clause_split"])

    def concept(name: str, spec: Mapping[str, Any], negatable: bool = True) -> Concept:
        return Concept(
            name=name,
            codes=_by_system(spec.get("codes", {}), systems, name, frozenset),
            prefixes=_by_system(spec.get("prefixes", {}), systems, name, tuple),
            text=tuple(_compile(p) for p in spec.get("text", ())),
            exclude_text=tuple(_compile(p) for p in spec.get("exclude_text", ())),
            negation=negation if negatable else (),
            clause_split=split,
        )

    concepts = {name: concept(name, spec) for name, spec in merged["concepts"].items()}
    classifiers = {
        name: Classifier(
            name,
            tuple(
                (label, concept(f"{name}.{label}", spec, negatable=spec.get("negatable", False)))
                for label, spec in labels.items()
            ),
        )
        for name, labels in merged["values"].items()
    }
    tag = merged["own_proposals"]
    return Terminology(concepts, classifiers, (tag["tag_system"], tag["tag_code"]))


def _by_system(spec: Mapping[str, Sequence[str]], systems: Mapping[str, Sequence[str]], where: str, kind: Any) -> Any:
    out: dict[str, list[str]] = {}
    for alias, codes in spec.items():
        if alias not in systems:
            raise ValueError(f"terminology: unknown code system alias '{alias}' in {where}")
        for uri in systems[alias]:
            out.setdefault(uri, []).extend(normalize_code(c) for c in codes)
    return {uri: kind(values) for uri, values in out.items()}


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, _FLAGS)
    except re.error as exc:
        raise ValueError(f"terminology: bad text pattern {pattern!r}: {exc}") from exc


def _merge_all(base: Mapping[str, Any], extensions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged = _deep_copy(base)
    for extension in extensions:
        _extend(merged, extension)
    return dict(merged)


def _extend(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping):
            _extend(into.setdefault(key, {}), value)
        elif isinstance(value, list):
            into.setdefault(key, [])
            into[key] = [*into[key], *value]
        else:
            into[key] = value


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value
