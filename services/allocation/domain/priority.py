"""Portfolio priority: which project's request wins a contested person, and how to say why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import get_args

from shared.events.contracts import CLOSED_STAGES, Stage

# Lifecycle stages whose projects hold no people: their allocations are released at once.
HOLDS_NOTHING = frozenset({"on_hold", *CLOSED_STAGES})
# Running projects keep their people before approved ones start; proposed (or not yet
# registered) projects come last.
TIERS = {"active": 2, "approved": 1, "proposed": 0, None: 0}
STAGE_WORDS = {stage: stage.replace("_", " ") for stage in get_args(Stage)}
"""Each stage in words ("on_hold" -> "on hold")."""


@dataclass(frozen=True)
class ProjectStanding:
    """What allocation knows of a project's place in the portfolio (from the registry's events)."""

    project_id: str
    name: str | None = None
    lifecycle: str | None = None
    """The registry's stage; None while the project has not been registered."""
    key_project: bool = False
    rank: int | None = None
    score: float | None = None
    portfolio_size: int | None = None
    strategy_version: int | None = None

    @property
    def holds_people(self) -> bool:
        return self.lifecycle not in HOLDS_NOTHING

    def priority_key(self) -> tuple[int, int, float]:
        """Lexicographic: lifecycle tier, then key project, then strategic rank (higher wins)."""
        return _priority_key(self.lifecycle, self.key_project, self.rank, self.portfolio_size)

    def describe(self) -> str:
        """E.g. `PRJ-ATLAS "Atlas ERP migration" (active, key project, rank 1 of 4, score 0.82)`."""
        label = f'{self.project_id} "{self.name}"' if self.name else self.project_id
        if self.lifecycle is None:
            parts = ["not registered in the portfolio"]
        else:
            parts = [STAGE_WORDS.get(self.lifecycle, self.lifecycle)]
        if self.key_project:
            parts.append("key project")
        if self.rank is not None:
            ranked = f"rank {self.rank}" + (
                f" of {self.portfolio_size}" if self.portfolio_size else ""
            )
            if self.score is not None:
                ranked += f", score {self.score:.2f}"
            parts.append(ranked)
        elif self.lifecycle is not None:
            parts.append("not ranked")
        return f"{label} ({', '.join(parts)})"


@lru_cache(maxsize=65536)
def _priority_key(
    lifecycle: str | None, key_project: bool, rank: int | None, portfolio_size: int | None
) -> tuple[int, int, float]:
    """`ProjectStanding.priority_key`, memoised: explanations compare projects thousands of
    times."""
    if rank is not None and portfolio_size:
        strategic = (portfolio_size - rank + 1) / portfolio_size
    else:
        strategic = 0.0
    return (TIERS.get(lifecycle, 0), int(key_project), round(strategic, 9))


def priority_levels(keys: Iterable[tuple[object, ...]]) -> dict[tuple[object, ...], int]:
    """Number the distinct priority keys 1 (lowest) .. K (highest).

    The solver's weights are these levels: one level up is worth one FTE-week more, so any
    higher-priority request beats a lower one per unit of capacity, and the tie-breaks and the
    stability penalty (fractions of a level) only decide between equally good solutions.
    """
    return {key: level for level, key in enumerate(sorted(set(keys)), start=1)}


def comparison(winner: ProjectStanding, loser: ProjectStanding) -> str:
    """Why `winner` comes first, in the words of the first criterion that separates them."""
    if winner.project_id == loser.project_id:
        return "another request of the same project came first (the requester's priority hint)"
    tier_w, key_w, strategic_w = winner.priority_key()
    tier_l, key_l, strategic_l = loser.priority_key()
    if tier_w != tier_l:
        return (
            f"{winner.project_id} is {STAGE_WORDS.get(winner.lifecycle or '', 'registered')} "
            f"and {loser.project_id} is "
            f"{STAGE_WORDS.get(loser.lifecycle or '', 'not registered')}: "
            "running projects keep their people before approved or proposed ones start"
        )
    if key_w != key_l:
        return f"{winner.project_id} is a key project and {loser.project_id} is not"
    if strategic_w != strategic_l:
        version = f" under strategy v{winner.strategy_version}" if winner.strategy_version else ""
        ahead = f"{winner.project_id} ranks {winner.rank}"
        if loser.rank is None:
            return f"{ahead}{version}; {loser.project_id} is not ranked"
        return f"{ahead} and {loser.project_id} ranks {loser.rank}{version}"
    return (
        f"{winner.project_id} and {loser.project_id} have equal portfolio priority; "
        "the one already allocated keeps the person (or, for new requests, the earlier one)"
    )
