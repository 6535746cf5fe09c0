"""Stage models: which lifecycle moves each methodology allows, read from data rather than code.

The file format (see `services/registry/stage_models.json`) names a default model and, per
methodology, its stages (phase, ranked), its initial stage (projects proposed through the API),
its started stage (where `project-started` puts a project) and the allowed transitions, each with
an optional gate. A move that is not listed is impossible; the reason says what is allowed.

A gate may also require deliverables (named documents submitted with their evidence, e.g. a
business case or a closure report), lessons learned recorded for the project, and a passed gate
review; `GateEvidence` is what the project has of those, and `check` names every one missing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.events.contracts import Stage

Phase = Literal["pipeline", "running", "closed"]
"""pipeline: not started yet; running: started, not closed; closed: final, nothing follows."""


class ImpossibleTransition(Exception):
    """A lifecycle move the project's stage model does not allow; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownMethodology(Exception):
    """A project names a methodology no stage model is defined for."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StageModelFileError(ValueError):
    """The stage model file cannot be used; the message says where and why."""


# --- the file format ----------------------------------------------------------------------------


class _Strict(BaseModel):
    # An operator's typo ("transtions") must fail loudly at start, not silently allow everything.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


DeliverableName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A deliverable's name in a stage model: lower-case letters, digits and `_` (business_case)."""


class Gate(_Strict):
    """Conditions on a transition beyond its being listed."""

    min_percent_complete: float | None = Field(default=None, ge=0, le=100)
    """The project's latest reported progress must be at least this."""
    requires_reason: bool = False
    """The move must state why (a user's reason, a report's comment, a directive's reason)."""
    deliverables: list[DeliverableName] = []
    """Deliverables that must have been submitted (with their evidence) for the project."""
    requires_lessons: bool = False
    """At least one lesson learned must have been recorded for the project."""
    requires_review: bool = False
    """A gate review must have passed this gate (this from -> to) since the project entered
    the from stage; each passage through the gate uses the review up."""

    @property
    def needs_evidence(self) -> bool:
        """Whether the gate asks for deliverables, lessons or a review (looked up in the store)."""
        return bool(self.deliverables) or self.requires_lessons or self.requires_review

    @property
    def startable(self) -> bool:
        """Whether `project-started` may walk through it: nothing it needs is a start event's to
        state (a reason, a progress); deliverables and reviews are submitted beforehand."""
        return self.min_percent_complete is None and not self.requires_reason


@dataclass(frozen=True)
class GateEvidence:
    """What a project has to pass a gate with: the deliverables submitted, the lessons learned
    recorded (a count) and whether a passed review of this gate is waiting to be used."""

    deliverables: frozenset[str] = frozenset()
    lessons: int = 0
    reviewed: bool = False

    def missing(self, gate: Gate) -> list[str]:
        """What the gate requires and this evidence lacks, in the gate's order (empty: none)."""
        missing = [
            f"deliverable {name}" for name in gate.deliverables if name not in self.deliverables
        ]
        if gate.requires_lessons and self.lessons == 0:
            missing.append("lessons learned")
        if gate.requires_review and not self.reviewed:
            missing.append("a passed gate review")
        return missing


class TransitionSpec(_Strict):
    from_stages: Annotated[list[Stage], BeforeValidator(_as_list)] = Field(
        alias="from", min_length=1
    )
    to: Stage
    gate: Gate = Gate()


class StageSpec(_Strict):
    phase: Phase
    ranked: bool
    """Whether projects in this stage take part in the strategic ranking."""
    description: str = ""


class StageModelSpec(_Strict):
    description: str = ""
    initial: Stage
    started: Stage
    stages: dict[Stage, StageSpec] = Field(min_length=1)
    transitions: list[TransitionSpec]

    @model_validator(mode="after")
    def _coherent(self) -> StageModelSpec:
        known = set(self.stages)
        for role in ("initial", "started"):
            stage = getattr(self, role)
            if stage not in known:
                raise ValueError(f"{role} stage {stage!r} is not among its stages {sorted(known)}")
        if self.stages[self.initial].phase == "closed":
            raise ValueError(f"initial stage {self.initial!r} must not be closed")
        if self.stages[self.started].phase != "running":
            raise ValueError(f"started stage {self.started!r} must have phase 'running'")
        seen: set[tuple[str, str]] = set()
        for number, transition in enumerate(self.transitions, start=1):
            for stage in (*transition.from_stages, transition.to):
                if stage not in known:
                    raise ValueError(
                        f"transition {number} names stage {stage!r}, not among {sorted(known)}"
                    )
            for origin in transition.from_stages:
                if self.stages[origin].phase == "closed":
                    raise ValueError(
                        f"transition {number} leaves {origin!r}, a closed (final) stage"
                    )
                if origin == transition.to:
                    raise ValueError(f"transition {number} goes from {origin!r} to itself")
                if (origin, transition.to) in seen:
                    raise ValueError(f"{origin} -> {transition.to} is listed twice")
                seen.add((origin, transition.to))
        # project-started must be able to start any project not started yet.
        model = StageModel.of("check", self)
        for stage, spec in self.stages.items():
            if spec.phase == "pipeline" and model.path_to_start(stage) is None:
                raise ValueError(
                    f"pipeline stage {stage!r} has no path of ungated transitions to the "
                    f"started stage {self.started!r}"
                )
        return self


class StageModelFile(_Strict):
    default: str
    models: dict[str, StageModelSpec] = Field(min_length=1)
    comment: str | None = Field(default=None, alias="$comment")

    @model_validator(mode="after")
    def _names(self) -> StageModelFile:
        names = [name.strip().casefold() for name in self.models]
        if any(not name for name in names):
            raise ValueError("a model name is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"model names must differ ignoring case (got {sorted(self.models)})")
        if self.default.strip().casefold() not in names:
            raise ValueError(f"default {self.default!r} is not one of the models {names}")
        return self


# --- the model the registry works with ------------------------------------------------------------


@dataclass(frozen=True)
class StageModel:
    """One methodology's stages and the moves between them."""

    name: str
    description: str
    initial: Stage
    started: Stage
    stages: Mapping[Stage, StageSpec]
    transitions: Mapping[tuple[Stage, Stage], Gate]

    @classmethod
    def of(cls, name: str, spec: StageModelSpec) -> StageModel:
        transitions = {
            (origin, transition.to): transition.gate
            for transition in spec.transitions
            for origin in transition.from_stages
        }
        return cls(name, spec.description, spec.initial, spec.started, spec.stages, transitions)

    def has_stage(self, stage: str) -> bool:
        return stage in self.stages

    def phase(self, stage: Stage) -> Phase:
        return self.stages[stage].phase

    def is_final(self, stage: Stage) -> bool:
        return self.stages[stage].phase == "closed"

    def is_ranked(self, stage: Stage) -> bool:
        return stage in self.stages and self.stages[stage].ranked

    def next_stages(self, stage: Stage) -> list[Stage]:
        """Where a project in `stage` may go, in the order the model lists its stages."""
        return [to for to in self.stages if (stage, to) in self.transitions]

    def check(
        self,
        from_stage: Stage,
        to_stage: Stage,
        *,
        percent_complete: float | None = None,
        reason: str | None = None,
        evidence: GateEvidence | None = None,
    ) -> None:
        """Raise ImpossibleTransition unless the model allows `from_stage` -> `to_stage` now.

        `evidence` is what the project has for the gate's deliverables, lessons and review (none
        when not given); the reason then lists everything missing.
        """
        where = f"the {self.name} stage model"
        for stage in (from_stage, to_stage):
            if stage not in self.stages:
                raise ImpossibleTransition(
                    f"{where} has no stage {stage!r} (its stages: {', '.join(self.stages)})"
                )
        if from_stage == to_stage:
            raise ImpossibleTransition(f"the project is already {from_stage}")
        if self.is_final(from_stage):
            raise ImpossibleTransition(
                f"{from_stage} is final in {where}: a {from_stage} project never changes stage"
            )
        gate = self.transitions.get((from_stage, to_stage))
        if gate is None:
            allowed = ", ".join(self.next_stages(from_stage)) or "nowhere"
            raise ImpossibleTransition(
                f"{from_stage} -> {to_stage} is not a transition of {where}; "
                f"from {from_stage} a project may go to: {allowed}"
            )
        if gate.min_percent_complete is not None and (
            percent_complete is None or percent_complete < gate.min_percent_complete
        ):
            progress = (
                "no progress has been reported"
                if percent_complete is None
                else f"it is {percent_complete:g}% complete"
            )
            raise ImpossibleTransition(
                f"{from_stage} -> {to_stage} in {where} requires at least "
                f"{gate.min_percent_complete:g}% complete ({progress})"
            )
        if gate.requires_reason and not (reason and reason.strip()):
            raise ImpossibleTransition(
                f"{from_stage} -> {to_stage} in {where} requires a reason, and none was given"
            )
        missing = (evidence or GateEvidence()).missing(gate)
        if missing:
            raise ImpossibleTransition(
                f"the {from_stage} -> {to_stage} gate of {where} is not satisfied: missing "
                f"{', '.join(missing)}"
            )

    def gate(self, from_stage: Stage, to_stage: Stage) -> Gate | None:
        """The gate of a listed transition; None if the transition is not listed."""
        return self.transitions.get((from_stage, to_stage))

    @property
    def deliverables(self) -> list[str]:
        """Every deliverable some gate of the model requires, sorted."""
        return sorted({name for gate in self.transitions.values() for name in gate.deliverables})

    def path_to_start(self, stage: Stage) -> list[Stage] | None:
        """The stages `project-started` walks a not-yet-started project through, in order.

        The shortest path of startable transitions from `stage` to the started stage (empty if
        already there); None if there is none. Steps gated on a reason or a progress are left out
        because an enterprise start event states neither; steps gated on deliverables or a review
        are taken, and refused (with what is missing) if those were not submitted beforehand.
        """
        if stage == self.started:
            return []
        came_from: dict[Stage, Stage] = {}
        visited = {stage}
        queue: deque[Stage] = deque([stage])
        while queue:
            current = queue.popleft()
            for to in self.next_stages(current):
                ungated = self.transitions[(current, to)].startable
                # Only through stages not started yet: never via on_hold or a closed stage.
                passable = to == self.started or self.phase(to) == "pipeline"
                if to in visited or not ungated or not passable:
                    continue
                visited.add(to)
                came_from[to] = current
                if to == self.started:
                    path = [to]
                    while came_from[path[-1]] != stage:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                queue.append(to)
        return None


@dataclass(frozen=True)
class StageModels:
    """Every methodology's stage model, and the one used when a project names none."""

    default: str
    models: Mapping[str, StageModel]

    @property
    def names(self) -> list[str]:
        return sorted(self.models)

    def canonical(self, methodology: str | None) -> str:
        """The model name a project's `methodology` selects (case and spaces ignored)."""
        if methodology is None or not methodology.strip():
            return self.default
        name = methodology.strip().casefold()
        if name not in self.models:
            raise UnknownMethodology(
                f"unknown methodology {methodology!r}: the stage models are {', '.join(self.names)}"
            )
        return name

    @property
    def closed_stages(self) -> frozenset[str]:
        """Every stage some model makes final (phase closed): where projects are closed."""
        return frozenset(
            stage
            for model in self.models.values()
            for stage, spec in model.stages.items()
            if spec.phase == "closed"
        )

    def resolve(self, methodology: str | None) -> StageModel:
        return self.models[self.canonical(methodology)]


def parse_stage_models(text: str, origin: str) -> StageModels:
    """Read a stage model file's text; `origin` (its path) is named in every error."""
    try:
        spec = StageModelFile.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'file'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        raise StageModelFileError(f"stage model file {origin}: {problems}") from error
    models = {
        name.strip().casefold(): StageModel.of(name.strip().casefold(), model)
        for name, model in spec.models.items()
    }
    return StageModels(default=spec.default.strip().casefold(), models=models)
