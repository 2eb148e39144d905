"""Forwarding rules: which stored instances go to which peers, and their queueing.

The rules of the settings (``[[forward]]`` tables) are compiled once into C-FIND matchers
(``index.matching``), so a criterion value may use wildcards, value lists and, for dates and
times in ``attributes``, ranges.  ``ForwardEnqueuer`` is the index's ``after_add`` hook: it
runs in the transaction that indexes each stored or replaced instance and writes the queue
rows there, so an instance is never acknowledged without them and recovery's re-indexing
queues too.  Sending is the forwarder's job (``dicom.forwarder``); nothing here speaks DICOM
over the network.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import Connection

from dicomhub.config import ForwardRule
from dicomhub.index.forward_queue import ForwardQueue
from dicomhub.index.matching import Matcher, MatchKind, parse_matcher
from dicomhub.index.repository import NewInstance


def _text(value: Any) -> str:
    """An attribute's value as C-FIND matching sees it: values joined with backslashes."""
    if value is None or isinstance(value, bytes | bytearray):
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    return str(value).strip()


def _attribute(keyword: str) -> Callable[[NewInstance], str]:
    def read(item: NewInstance) -> str:
        dataset: Dataset = item.dataset
        return _text(dataset.get(keyword))

    return read


def _calling(item: NewInstance) -> str:
    return item.calling_ae_title.strip()


def _called(item: NewInstance) -> str:
    return item.called_ae_title.strip()


@dataclass(frozen=True)
class _Criterion:
    name: str
    read: Callable[[NewInstance], str]
    matcher: Matcher

    def matches(self, item: NewInstance) -> bool:
        return self.matcher.matches(self.read(item))


@dataclass(frozen=True)
class _CompiledRule:
    name: str
    destinations: tuple[str, ...]
    criteria: tuple[_Criterion, ...]

    def matches(self, item: NewInstance) -> bool:
        return all(criterion.matches(item) for criterion in self.criteria)


def _criterion(
    name: str,
    keyword: str,
    vr: str,
    values: Sequence[str],
    read: Callable[[NewInstance], str],
    case_insensitive_pn: bool,
) -> _Criterion | None:
    """A criterion, or None when it matches anything (nothing to check)."""
    if not values:
        return None
    matcher = parse_matcher(keyword, vr, "\\".join(values), case_insensitive_pn=case_insensitive_pn)
    if matcher.kind is MatchKind.UNIVERSAL:
        return None
    return _Criterion(name, read, matcher)


def _compile(rule: ForwardRule, case_insensitive_pn: bool) -> _CompiledRule:
    candidates = [
        _criterion(
            "calling_ae_title", "", "AE", rule.calling_ae_title, _calling, case_insensitive_pn
        ),
        _criterion("called_ae_title", "", "AE", rule.called_ae_title, _called, case_insensitive_pn),
        _criterion("modality", "Modality", "CS", rule.modality, _attribute("Modality"), False),
        _criterion(
            "sop_class_uid",
            "SOPClassUID",
            "UI",
            rule.sop_class_uid,
            _attribute("SOPClassUID"),
            False,
        ),
    ]
    for keyword, value in rule.attributes.items():
        vr = dictionary_VR(keyword).split(" or ")[0]
        candidates.append(
            _criterion(keyword, keyword, vr, [value], _attribute(keyword), case_insensitive_pn)
        )
    criteria = tuple(c for c in candidates if c is not None)
    return _CompiledRule(rule.name, tuple(dict.fromkeys(rule.destinations)), criteria)


class ForwardRules:
    """The forwarding rules, compiled once."""

    def __init__(self, rules: Sequence[ForwardRule], *, case_insensitive_pn: bool = True) -> None:
        self._rules = tuple(_compile(rule, case_insensitive_pn) for rule in rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def destinations(self, item: NewInstance) -> list[tuple[str, str]]:
        """``(rule name, peer name)`` for every destination the instance goes to.

        A peer named by several matching rules receives the instance once, for the first
        of them in the configuration.
        """
        targets: dict[str, str] = {}
        for rule in self._rules:
            if rule.matches(item):
                for peer in rule.destinations:
                    targets.setdefault(peer, rule.name)
        return [(rule, peer) for peer, rule in targets.items()]


class ForwardEnqueuer:
    """The index's ``after_add`` hook: queue each stored instance for its destinations.

    ``wake`` (optional) is set once the transaction that queued something is committed, so
    this process's forwarder starts at once instead of at its next look at the queue.
    """

    def __init__(
        self, rules: ForwardRules, queue: ForwardQueue, wake: threading.Event | None = None
    ) -> None:
        self.rules = rules
        self.queue = queue
        self.wake = wake
        self._queued = False

    def __call__(self, conn: Connection, item: NewInstance) -> None:
        targets = self.rules.destinations(item)
        if not targets:
            return
        self.queue.enqueue(conn, item.sop_instance_uid, targets)
        self._queued = True

    def committed(self) -> None:
        """The index's ``after_commit`` hook: wake the forwarder if the transaction queued
        something (a rolled-back one only causes a needless look at the queue)."""
        if self._queued and self.wake is not None:
            self.wake.set()
        self._queued = False
