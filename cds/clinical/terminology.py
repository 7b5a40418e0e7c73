"""Value sets as data: codes per system, code prefixes and text patterns, read from ``cards/terminology.toml``.

A deployment extends them with its own TOML files of the same shape (``clinical.terminology_extensions``):
lists are appended, so a site adds its local codes and phrasings without editing ours. Codes are compared after
normalisation (upper case, no dots or spaces), so ``C22.0``, ``c220`` and ``C22.0 `` are the same code and the
Chinese national extensions such as ``C22.0x001`` match the prefix ``C22.0``.

Text matching works clause by clause and honours negation and uncertainty cues in their scope ("no PVTT",
"未见癌栓", "suspected recurrence"); only an affirmed mention counts as a fact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds.clinical.fhirview import codings, describe_coding, texts

_FLAGS = re.IGNORECASE | re.UNICODE
_WORD_TAIL = re.compile(r"[A-Za-z-]*")
# Coded elements carry short texts; matching is cut off here so that a pathological string costs bounded time.
MAX_TEXT = 20_000


def normalize_code(code: str) -> str:
    return re.sub(r"[.\s]", "", code).upper()


@dataclass(frozen=True)
class Match:
    """What matched (a coding, or a phrase in the text) and how the text qualified it."""

    detail: str
    negated: bool = False
    uncertain: bool = False

    @property
    def affirmed(self) -> bool:
        return not (self.negated or self.uncertain)


@dataclass(frozen=True)
class Qualifiers:
    """Negation and uncertainty cues, NegEx-style: a cue qualifies a term only within its own scope.

    ``before`` cues ("no", "未见") qualify a term that follows them in the same clause, up to a scope-ending word
    ("but", "and", "伴"); ``after`` cues ("absent", "(-)") qualify the term they directly follow. ``uncertain``
    cues ("suspected", "possible", "?") make a mention uncertain wherever they stand in the clause.
    """

    before: tuple[re.Pattern[str], ...] = ()
    after: tuple[re.Pattern[str], ...] = ()
    scope_end: re.Pattern[str] | None = None
    uncertain: tuple[re.Pattern[str], ...] = ()
    # Phrases that look like negation but are not ("no change in the PVTT", "癌栓无明显变化"): blanked first.
    pseudo: tuple[re.Pattern[str], ...] = ()

    def qualify(self, clause: str, start: int, end: int) -> tuple[bool, bool]:
        """``(negated, uncertain)`` for the term at ``clause[start:end]``; uncertainty wins over negation
        ("cannot rule out PVTT" is uncertain, not negated)."""
        if any(p.search(clause) for p in self.uncertain):
            return False, True
        tail = _WORD_TAIL.match(clause, end)
        end += len(tail.group(0)) if tail else 0  # "recurren|ce: absent": the cue follows the whole word
        window = self._without_pseudo(clause[max(0, start - 60) : start])
        if self.scope_end is not None:
            window = self.scope_end.split(window)[-1]
        following = self._without_pseudo(clause[end : end + 25])
        negated = any(p.search(window) for p in self.before) or any(p.match(following) for p in self.after)
        return negated, False

    def is_uncertain(self, text: str) -> bool:
        return any(p.search(text) for p in self.uncertain)

    def _without_pseudo(self, text: str) -> str:
        for pattern in self.pseudo:
            text = pattern.sub(lambda m: " " * len(m.group(0)), text)
        return text


@dataclass(frozen=True)
class Concept:
    """One value set: codes and prefixes per system URI, text patterns, and phrases that disqualify a text."""

    name: str
    codes: Mapping[str, frozenset[str]]
    prefixes: Mapping[str, tuple[str, ...]]
    text: tuple[re.Pattern[str], ...]
    exclude_text: tuple[re.Pattern[str], ...]
    qualifiers: Qualifiers
    clause_split: re.Pattern[str]
    # Text may name the concept only when no standard coding says otherwise (see ``match``).
    text_overrides_codes: bool = True
    standard_systems: frozenset[str] = frozenset()

    def match_coding(self, system: str, code: str) -> bool:
        norm = normalize_code(code)
        if norm in self.codes.get(system, ()):
            return True
        return any(norm.startswith(p) for p in self.prefixes.get(system, ()))

    def match(self, concept: Any, extra_texts: Sequence[str] = ()) -> Match | None:
        """Match a CodeableConcept: a coding wins; otherwise a phrase in its text (qualified, see ``Match``).

        A text that also contains an exclusion phrase ("history of", "cholangiocarcinoma") never matches, even
        when a coding does: the words written by a clinician qualify the code. When the concept is coded in a
        standard system with a code outside this value set, its text cannot override the code unless
        ``text_overrides_codes``.
        """
        strings = [*texts(concept), *extra_texts]
        codes = list(codings(concept))
        for system, code, display in codes:
            if self.match_coding(system, code):
                if self.excluded(strings):
                    return None
                # The words qualify the code: "Suspected HCC" coded C22.0 is not a diagnosis.
                worded = self.match_text(strings)
                negated = worded is not None and worded.negated
                uncertain = self.qualifiers.is_uncertain(" ".join(strings))
                return Match(describe_coding(system, code, display), negated, uncertain)
        if not self.text_overrides_codes and any(system in self.standard_systems for system, _, _ in codes):
            return None
        # Exclusions are looked for only once something matched: most concepts match nothing in most records.
        found = self.match_text(strings)
        return None if found is None or self.excluded(strings) else found

    def affirms(self, concept: Any, extra_texts: Sequence[str] = ()) -> Match | None:
        """The match only if it is affirmed (not negated, not uncertain)."""
        match = self.match(concept, extra_texts)
        return match if match is not None and match.affirmed else None

    def match_text(self, strings: Iterable[str]) -> Match | None:
        """The first affirmed mention in ``strings``; else an uncertain one; else a negated one; else None."""
        fallback: Match | None = None
        for string in strings:
            for clause in self.clause_split.split(string[:MAX_TEXT]):
                for pattern in self.text:
                    found = pattern.search(clause)
                    if found is None:
                        continue
                    if any(p.search(clause) for p in self.exclude_text):
                        break
                    negated, uncertain = self.qualifiers.qualify(clause, found.start(), found.end())
                    match = Match(f"'{clause.strip()[:120]}'", negated, uncertain)
                    if match.affirmed:
                        return match
                    if fallback is None or (fallback.negated and not match.negated):
                        fallback = match
                    break
        return fallback

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
            if match is not None and match.affirmed:
                found.append((label, match))
        return found

    def doubtful(self, concept: Any = None, strings: Sequence[str] = ()) -> bool:
        """Some label is named but negated or uncertain ("not BCLC B", "BCLC B?")."""
        for _, concept_set in self.labels:
            match = concept_set.match(concept, strings)
            if match is not None and not match.affirmed:
                return True
        return False

    def first(self, concept: Any = None, strings: Sequence[str] = ()) -> tuple[str, Match] | None:
        found = self.classify(concept, strings)
        return found[0] if found else None


@dataclass(frozen=True)
class Terminology:
    concepts: Mapping[str, Concept]
    classifiers: Mapping[str, Classifier]
    own_tag: tuple[str, str]
    qualifiers: Qualifiers = Qualifiers()

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
    cues = merged["negation"]
    qualifiers = Qualifiers(
        before=tuple(_compile(p) for p in cues["before"]),
        after=tuple(_compile(p) for p in cues["after"]),
        scope_end=_compile("|".join(f"(?:{p})" for p in cues["scope_end"])),
        uncertain=tuple(_compile(p) for p in cues["uncertain"]),
        pseudo=tuple(_compile(p) for p in cues["pseudo"]),
    )
    split = re.compile(cues["clause_split"])
    standard = frozenset(uri for alias in merged["standard_systems"]["aliases"] for uri in systems[alias])

    def concept(name: str, spec: Mapping[str, Any], qualified: bool = True) -> Concept:
        return Concept(
            name=name,
            codes=_by_system(spec.get("codes", {}), systems, name, frozenset),
            prefixes=_by_system(spec.get("prefixes", {}), systems, name, tuple),
            text=tuple(_compile(p) for p in spec.get("text", ())),
            exclude_text=tuple(_compile(p) for p in spec.get("exclude_text", ())),
            qualifiers=qualifiers if qualified else Qualifiers(),
            clause_split=split,
            text_overrides_codes=bool(spec.get("text_overrides_codes", True)),
            standard_systems=standard,
        )

    concepts = {name: concept(name, spec) for name, spec in merged["concepts"].items()}
    classifiers = {
        name: Classifier(
            name,
            tuple(
                (label, concept(f"{name}.{label}", spec, qualified=spec.get("qualified", False)))
                for label, spec in labels.items()
            ),
        )
        for name, labels in merged["values"].items()
    }
    tag = merged["own_proposals"]
    return Terminology(concepts, classifiers, (tag["tag_system"], tag["tag_code"]), qualifiers)


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
