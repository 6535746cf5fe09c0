"""The combined what-if: a draft strategy's ranking, actions and allocation changes side by side.

The registry ranks a draft strategy and says what its directives would do; allocation says what a
draft ranking and draft stages would do to the people. Asked separately, a project the second call
leaves out silently becomes "not ranked". Here the draft ranking handed to allocation is always
the registry's whole draft ranking, and the stages are those the directives would move projects to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RankingRow:
    """One project now and under the draft."""

    project_id: str
    name: str
    rank_now: int | None
    rank_draft: int | None
    score_now: float | None
    score_draft: float | None
    action_now: str | None
    action_draft: str | None
    why_draft: str

    @property
    def moved(self) -> int | None:
        """Places gained under the draft (positive: up the ranking)."""
        if self.rank_now is None or self.rank_draft is None:
            return None
        return self.rank_now - self.rank_draft


@dataclass(frozen=True)
class AllocationRow:
    """One request whose allocation the draft would change."""

    request_id: str
    project_id: str
    fte_before: float
    fte_after: float
    weeks_before: tuple[str, ...]
    weeks_after: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class WhatIfResult:
    """Everything one what-if shows; nothing of it was applied."""

    draft_version: int
    would_apply: bool
    note: str
    ranking: list[RankingRow]
    directive_effects: list[dict[str, Any]]
    allocations: list[AllocationRow]
    conflicts: list[dict[str, Any]]
    solver: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "draft_version": self.draft_version,
            "would_apply": self.would_apply,
            "note": self.note,
            "ranking": [{**row.__dict__, "moved": row.moved} for row in self.ranking],
            "directive_effects": self.directive_effects,
            "allocation_changes": [
                {
                    **row.__dict__,
                    "weeks_before": list(row.weeks_before),
                    "weeks_after": list(row.weeks_after),
                }
                for row in self.allocations
            ],
            "conflicts": self.conflicts,
            "solver": self.solver,
        }


def allocation_draft(registry_what_if: Mapping[str, Any]) -> dict[str, Any]:
    """The body of allocation's what-if for the registry's draft: the WHOLE draft ranking, and
    the stage of every project a directive would move."""
    return {
        "ranking": [
            {"project_id": entry["project_id"], "rank": entry["rank"], "score": entry["score"]}
            for entry in registry_what_if.get("ranking") or []
        ],
        "lifecycle": {
            effect["project_id"]: effect["to_stage"]
            for effect in registry_what_if.get("directive_effects") or []
            if effect.get("effect") == "moved"
            and effect.get("project_id")
            and effect.get("to_stage")
        }
        or None,
    }


def combine(
    current: Iterable[Mapping[str, Any]],
    registry_what_if: Mapping[str, Any],
    allocation_what_if: Mapping[str, Any],
) -> WhatIfResult:
    """Side by side: the ranking now and under the draft, the draft's directive effects, and the
    allocation changes and conflicts it would cause."""
    now = {str(entry["project_id"]): entry for entry in current}
    draft = {str(entry["project_id"]): entry for entry in registry_what_if.get("ranking") or []}
    ids = sorted(
        set(now) | set(draft),
        key=lambda pid: (draft.get(pid, {}).get("rank") or 10**9, pid),
    )
    ranking = [
        RankingRow(
            project_id=pid,
            name=str((draft.get(pid) or now.get(pid) or {}).get("name") or pid),
            rank_now=now.get(pid, {}).get("rank"),
            rank_draft=draft.get(pid, {}).get("rank"),
            score_now=now.get(pid, {}).get("score"),
            score_draft=draft.get(pid, {}).get("score"),
            action_now=now.get(pid, {}).get("action"),
            action_draft=draft.get(pid, {}).get("action"),
            why_draft=str(draft.get(pid, {}).get("why") or ""),
        )
        for pid in ids
    ]
    allocations = [
        AllocationRow(
            request_id=str(change["request_id"]),
            project_id=str(change["project_id"]),
            fte_before=float(change["before"].get("fte_granted") or 0),
            fte_after=float(change["after"].get("fte_granted") or 0),
            weeks_before=tuple(change["before"].get("weeks") or ()),
            weeks_after=tuple(change["after"].get("weeks") or ()),
            reason=str(change.get("reason") or ""),
        )
        for change in allocation_what_if.get("changes") or []
    ]
    return WhatIfResult(
        draft_version=int(registry_what_if.get("draft_version") or 0),
        would_apply=bool(registry_what_if.get("would_apply")),
        note=str(registry_what_if.get("note") or ""),
        ranking=ranking,
        directive_effects=list(registry_what_if.get("directive_effects") or []),
        allocations=allocations,
        conflicts=list(allocation_what_if.get("conflicts") or []),
        solver=dict(allocation_what_if.get("solver") or {}),
    )
