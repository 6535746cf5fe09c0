"""Lessons learned: stored, found by PostgreSQL full-text search, suggested to similar projects.

The search is PostgreSQL's own (a stored tsvector column with a GIN index, queried with
`websearch_to_tsquery` and ranked with `ts_rank_cd`), in English: stems match (delays, delayed,
delaying), title and tags weigh more than the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import LessonRow, ProjectRow

Similarity = Literal["business_unit", "methodology", "objectives"]

SUGGESTION_LIMIT = 10
"""At most this many lessons are suggested to a project."""


@dataclass(frozen=True)
class FoundLesson:
    """A lesson found by a search, with its rank (`ts_rank_cd`, higher is more relevant)."""

    lesson: LessonRow
    rank: float


@dataclass(frozen=True)
class LessonSuggestion:
    """A lesson of a similar closed project; `similarity` says what the projects share."""

    lesson: LessonRow
    similarity: list[Similarity]


_COLUMNS = (
    "l.id, l.project_id, l.title, l.what_happened, l.repeat, l.avoid, l.tags, l.methodology, "
    "l.business_unit, l.stage, l.recorded_by, l.recorded_at"
)


def _lesson(row: Any) -> LessonRow:
    return LessonRow.model_validate(dict(row._mapping))


def add_lesson(
    session: AsyncSession, project: ProjectRow, fields: dict[str, Any], *, by: str
) -> LessonRow:
    """A new lesson learned on `project` (its business unit, methodology and stage kept with it).

    `fields`: title, what_happened, and optionally repeat, avoid, tags (list of str).
    """
    lesson = LessonRow(
        project_id=project.project_id,
        title=fields["title"],
        what_happened=fields["what_happened"],
        repeat=fields.get("repeat"),
        avoid=fields.get("avoid"),
        tags=list(fields.get("tags") or []),
        methodology=project.methodology,
        business_unit=project.business_unit,
        stage=project.lifecycle,
        recorded_by=by,
    )
    session.add(lesson)
    return lesson


async def search_lessons(
    session: AsyncSession,
    query: str,
    *,
    business_unit: str | None = None,
    methodology: str | None = None,
    tag: str | None = None,
    limit: int = 50,
) -> list[FoundLesson]:
    """Lessons matching `query` (web-search syntax: words, "a phrase", or, -not), best first.

    Filters: business unit (case ignored), methodology (canonical name), tag (exact).
    """
    sql = f"""
        SELECT {_COLUMNS}, ts_rank_cd(l.search, q) AS rank
        FROM registry.lesson l, websearch_to_tsquery('english', :query) q
        WHERE l.search @@ q
          AND (CAST(:business_unit AS text) IS NULL
               OR lower(l.business_unit) = lower(CAST(:business_unit AS text)))
          AND (CAST(:methodology AS text) IS NULL OR l.methodology = CAST(:methodology AS text))
          AND (CAST(:tag AS text) IS NULL OR l.tags @> jsonb_build_array(CAST(:tag AS text)))
        ORDER BY rank DESC, l.id DESC
        LIMIT :limit
    """
    rows = await (await session.connection()).execute(
        text(sql),
        {
            "query": query,
            "business_unit": business_unit,
            "methodology": methodology,
            "tag": tag,
            "limit": limit,
        },
    )
    return [FoundLesson(_lesson(row), float(row.rank)) for row in rows]


async def lessons_of(session: AsyncSession, project_id: str) -> list[LessonRow]:
    """The lessons recorded on one project, oldest first."""
    rows = await (await session.connection()).execute(
        text(f"SELECT {_COLUMNS} FROM registry.lesson l WHERE l.project_id = :p ORDER BY l.id"),
        {"p": project_id},
    )
    return [_lesson(row) for row in rows]


async def similar_lessons(
    session: AsyncSession, project: ProjectRow, closed_stages: Iterable[str]
) -> list[LessonSuggestion]:
    """Lessons of closed projects similar to `project`: same business unit (case ignored), same
    methodology, or a strategic objective in common. Most similar first (business unit and
    objectives weigh 2, methodology 1), then newest; at most SUGGESTION_LIMIT."""
    objectives = sorted(
        {str(item["objective_id"]) for item in project.objectives if "objective_id" in item}
    )
    sql = text(
        f"""
        SELECT {_COLUMNS}, s.same_unit, s.same_methodology, s.same_objectives
        FROM registry.lesson l
        JOIN registry.project p ON p.project_id = l.project_id
        CROSS JOIN LATERAL (
            SELECT lower(l.business_unit) = lower(CAST(:business_unit AS text)) AS same_unit,
                   l.methodology IS NOT DISTINCT FROM CAST(:methodology AS text)
                       AS same_methodology,
                   EXISTS (
                       SELECT 1 FROM jsonb_array_elements(p.objectives) o
                       WHERE o->>'objective_id' = ANY(:objectives)
                   ) AS same_objectives
        ) s
        WHERE p.lifecycle = ANY(:closed)
          AND l.project_id <> :project_id
          AND (s.same_unit OR s.same_methodology OR s.same_objectives)
        ORDER BY 2 * s.same_unit::int + s.same_methodology::int + 2 * s.same_objectives::int DESC,
                 l.id DESC
        LIMIT :limit
        """
    ).bindparams(
        bindparam("objectives", type_=ARRAY(Text)),
        bindparam("closed", type_=ARRAY(Text)),
    )
    rows = await (await session.connection()).execute(
        sql,
        {
            "business_unit": project.business_unit,
            "methodology": project.methodology,
            "objectives": objectives,
            "closed": sorted(closed_stages),
            "project_id": project.project_id,
            "limit": SUGGESTION_LIMIT,
        },
    )
    suggestions = []
    for row in rows:
        mapping = dict(row._mapping)
        similarity: list[Similarity] = []
        if mapping.pop("same_unit"):
            similarity.append("business_unit")
        if mapping.pop("same_methodology"):
            similarity.append("methodology")
        if mapping.pop("same_objectives"):
            similarity.append("objectives")
        suggestions.append(LessonSuggestion(LessonRow.model_validate(mapping), similarity))
    return suggestions
