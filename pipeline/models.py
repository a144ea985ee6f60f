"""Data contracts between the pipeline's stages (DESIGN §3), as strict pydantic v2 models.

Every model is closed (unknown fields are errors) and strict (no silent coercion). Files are read
with ``model_validate_json`` so that JSON-only types such as timestamps parse in strict mode.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
QualifiedTool = Annotated[
    str, Field(max_length=128, pattern=r"^[a-z][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
]
EnvName = Annotated[str, Field(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
#: ``step_id`` or ``step_id.json.path`` (dotted keys / list indices into that step's output)
BindingSource = Annotated[str, Field(max_length=256, pattern=r"^[A-Za-z0-9_.-]+(\.[^.]+)*$")]


#: text a person reads or an id: no control characters but tab and newlines (a NUL or an escape
#: sequence in a question or id would be published as it is and break the tools that show it)
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_IN_ID = re.compile(r"[\x00-\x1f\x7f]")


def _refuse(pattern: re.Pattern[str]) -> AfterValidator:
    def check(text: str) -> str:
        found = pattern.search(text)
        if found is not None:
            raise ValueError(f"holds the control character U+{ord(found.group()):04X}")
        return text

    return AfterValidator(check)


PlainText = Annotated[str, _refuse(_CONTROL_IN_TEXT)]
RecordId = Annotated[str, Field(min_length=1, max_length=256), _refuse(_CONTROL_IN_ID)]
#: an integer Parquet (and so a published dataset) can hold
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]

#: a duration in seconds: finite and not negative (a NaN or negative latency would run the
#: simulator without end or score an impossible makespan)
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Contract(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def canonical_json(value: Any) -> str:
    """The one serialisation used for hashing: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


class Call(Contract):
    """One ground-truth step."""

    id: StepId
    tool: QualifiedTool
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    depends_on: list[StepId] = Field(default_factory=list)
    #: ``argument`` (or ``argument.index`` for a list element) -> where its value comes from
    bindings: dict[str, BindingSource] = Field(default_factory=dict)

    @property
    def env(self) -> str:
        return self.tool.split(".", 1)[0]

    @property
    def function(self) -> str:
        return self.tool.split(".", 1)[1]


class Expected(Contract):
    """Filled by validation: what a correct execution must end with."""

    state_digest: str
    outputs: dict[StepId, JsonValue] = Field(default_factory=dict)


class Lineage(Contract):
    parents: list[str] = Field(default_factory=list)
    operator: str = "seed"
    round: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    model: str | None = None
    prompt_hash: str | None = None
    #: where a seed came from, e.g. ``seeds/filesystem.jsonl`` or ``bfcl:multi_turn_base_3#turn1``
    source: str | None = None
    #: who wrote the request of an LLM deepen or broaden that chose an offered step: ``model``,
    #: or ``code`` where the model's words did not ask for the step it chose and the step's
    #: verbalised request took their place
    words: Literal["model", "code"] | None = None


class Task(Contract):
    """A single task: a question, the start state of each environment, and its ground truth."""

    id: RecordId
    category: EnvName
    envs: list[EnvName] = Field(min_length=1)
    question: Annotated[PlainText, Field(min_length=1)]
    initial_config: dict[EnvName, dict[str, JsonValue]] = Field(default_factory=dict)
    calls: list[Call]
    expected: Expected | None = None
    lineage: Lineage = Field(default_factory=Lineage)

    def content_id(self) -> str:
        """Hash of what defines the task (not of its lineage or validation results)."""
        return content_hash(
            {
                "category": self.category,
                "envs": self.envs,
                "question": self.question,
                "initial_config": self.initial_config,
                "calls": [call.model_dump(mode="json") for call in self.calls],
            }
        )

    def with_content_id(self) -> Task:
        return self.model_copy(update={"id": self.content_id()})

    def derive(
        self,
        operator: str,
        *,
        model: str | None = None,
        prompt_hash: str | None = None,
        next_round: bool = True,
        **changes: Any,
    ) -> Task:
        """A child of this task made by ``operator``: ``changes`` applied (question, calls,
        initial_config ...), ``expected`` cleared (it must be validated again), the lineage
        pointing here with this task's source, and its own content id. ``next_round=False``
        keeps the round, for variants that are the same task in another setting."""
        lineage = Lineage(
            parents=[self.id],
            operator=operator,
            round=self.lineage.round + 1 if next_round else self.lineage.round,
            model=model,
            prompt_hash=prompt_hash,
            source=self.lineage.source,
        )
        child = self.model_copy(update={**changes, "expected": None, "lineage": lineage})
        return child.with_content_id()


class Composition(StrEnum):
    SAME_CATEGORY = "same_category"
    CROSS_CATEGORY = "cross_category"


class ContextProfile(StrEnum):
    """How much context an instance's environments load (issue 16)."""

    STANDARD = "standard"  # each task as validated
    #: every environment with upstream BFCL's long-context mode runs with it on
    LONG = "long"


class Bounds(Contract):
    """Makespans in seconds under the scheduling model of ``pipeline.schedule``."""

    optimal_makespan: Seconds
    sequential_makespan: Seconds
    turn_cost: Seconds


class Instance(Contract):
    """A multi-task instance: 2–3 tasks the agent works on at once."""

    id: RecordId
    tasks: list[Task] = Field(min_length=2, max_length=3)
    composition: Composition
    latency_profile: str
    seed: Int64
    latency: dict[QualifiedTool, Seconds]
    bounds: Bounds
    #: defaulted, so instances written before the field existed still load
    context_profile: ContextProfile = ContextProfile.STANDARD


class Stage(StrEnum):
    PARSE = "parse"
    LIMIT = "limit"
    STATIC = "static"
    EXECUTE = "execute"
    DEPENDENCY = "dependency"
    GROUNDING = "grounding"
    QUESTION = "question"
    MINIMALITY = "minimality"
    #: a valid LLM candidate that adds nothing to its parent (pipeline/evolve/novelty.py)
    EVOLVE = "evolve"
    JUDGE = "judge"
    REVIEW = "review"


class RejectionCode(StrEnum):
    """The closed set of reasons a candidate can be rejected for; the prefix is its stage."""

    PARSE_MALFORMED = "parse.malformed"
    PARSE_UNSAFE = "parse.unsafe"
    #: a later line of the same input repeats a task id (the first one is kept)
    PARSE_DUPLICATE_ID = "parse.duplicate_id"
    #: the candidate exceeds a documented size or time bound (docs/validation.md, "Limits")
    LIMIT_CALLS = "limit.calls"
    LIMIT_QUESTION = "limit.question"
    LIMIT_OUTPUT = "limit.output"
    LIMIT_TIME = "limit.time"
    STATIC_UNKNOWN_TOOL = "static.unknown_tool"
    STATIC_BAD_ARGUMENTS = "static.bad_arguments"
    STATIC_TOO_FEW_CALLS = "static.too_few_calls"
    STATIC_IDENTICAL_CONSECUTIVE = "static.identical_consecutive"
    STATIC_API_NAME_IN_QUESTION = "static.api_name_in_question"
    STATIC_BAD_DEPENDENCY = "static.bad_dependency"
    STATIC_BAD_INITIAL_STATE = "static.bad_initial_state"
    #: a call names a file or document by a data format's extension and says it is another
    #: format ('converted_to_json.csv' saved as JSON)
    STATIC_NAME_FORMAT_MISMATCH = "static.name_format_mismatch"
    EXECUTE_TOOL_ERROR = "execute.tool_error"
    EXECUTE_NONDETERMINISTIC = "execute.nondeterministic"
    DEPENDENCY_SPURIOUS = "dependency.spurious"
    DEPENDENCY_UNDECLARED = "dependency.undeclared"
    #: a binding joins a result field and a parameter of different semantic types
    DEPENDENCY_TYPE_MISMATCH = "dependency.type_mismatch"
    #: arithmetic over quantities whose dimensions do not combine (a mass times a mass, a mass
    #: plus a length, kilograms plus grams)
    DEPENDENCY_DIMENSION_MISMATCH = "dependency.dimension_mismatch"
    #: the question makes a step conditional on a result the step does not depend on
    DEPENDENCY_CONDITION_UNLINKED = "dependency.condition_unlinked"
    GROUNDING_UNGROUNDED_ARGUMENT = "grounding.ungrounded_argument"
    #: a value sits only in the hidden initial state: no call reveals it, the question omits it
    GROUNDING_HIDDEN_STATE = "grounding.hidden_state"
    #: the question presumes an earlier conversation ("Furthermore,", "that file")
    QUESTION_CONTEXT_DEPENDENT = "question.context_dependent"
    #: the question states things but asks for nothing
    QUESTION_NO_REQUEST = "question.no_request"
    #: generator artefacts: repeated phrases, unfilled slots, doubled quotes
    QUESTION_TEMPLATE_ARTEFACT = "question.template_artefact"
    #: a literal argument appears in the question without its format (``@``, ``#``, extension)
    QUESTION_FORMAT_LOST = "question.format_lost"
    #: the question quotes a name or value that no call passes and no result shows
    QUESTION_UNUSED_VALUE = "question.unused_value"
    #: the question calls a directory, file, table or buffer new that exists before any call
    QUESTION_FALSE_PREMISE = "question.false_premise"
    #: the question asks for a tool by its phrase ("guide me to the shop") that no call uses
    QUESTION_UNSERVED_REQUEST = "question.unserved_request"
    MINIMALITY_REDUNDANT_CALL = "minimality.redundant_call"
    #: the same calls as the parent or an accepted sibling, and a question barely reworded
    EVOLVE_NEAR_COPY = "evolve.near_copy"
    #: deepen added no call that uses (or is conditioned on) an earlier result, or the model's
    #: values make the new step a read that returns only values already known
    EVOLVE_NOT_DEEPER = "evolve.not_deeper"
    #: broaden kept the parent's tool set and its final state
    EVOLVE_SAME_GOAL = "evolve.same_goal"
    #: paraphrase dropped or respelt a literal value of the request (case included)
    EVOLVE_LITERAL_CHANGED = "evolve.literal_changed"
    #: a paraphrase names two calls that depend on each other in the other order
    EVOLVE_ORDER_CHANGED = "evolve.order_changed"
    #: a paraphrase changes what the request means: it speaks of the user's own things as the
    #: assistant's ("register your card") or adds a reason its parent never gave
    EVOLVE_MEANING_CHANGED = "evolve.meaning_changed"
    #: the words a deepen or broaden request adds do not ask for the step its calls add, or a
    #: paraphrase no longer asks for a step its parent's request did
    EVOLVE_STEP_UNASKED = "evolve.step_unasked"
    #: broaden's request still states a value only the parent's dropped calls used
    EVOLVE_DROPPED_STEP_ASKED = "evolve.dropped_step_asked"
    #: no checked step for deepen or broaden to offer, and the model may not write its own
    EVOLVE_NO_STEP = "evolve.no_step"
    #: a value the model filled in for a step is a stand-in ("<title>", "New title for ...")
    EVOLVE_PLACEHOLDER_VALUE = "evolve.placeholder_value"
    #: a text the model wrote for a step asks to undo what the request just did ("I need to
    #: cancel my flight" sent about the flight it booked)
    EVOLVE_UNDOES_REQUEST = "evolve.undoes_request"
    #: the LLM judge answered "no" on a rubric label it is trusted on (pipeline/evolve/judge.py)
    JUDGE_MISMATCH = "judge.mismatch"
    JUDGE_AMBIGUOUS = "judge.ambiguous"  # the rubric's under-specified
    JUDGE_NONSENSICAL = "judge.nonsensical"
    JUDGE_UNNATURAL_LANGUAGE = "judge.unnatural_language"
    JUDGE_CONTEXT_DEPENDENT = "judge.context_dependent"
    JUDGE_UNGROUNDED = "judge.ungrounded"
    JUDGE_WRONG_DEPENDENCY = "judge.wrong_dependency"
    REVIEW_REJECTED = "review.rejected"

    @property
    def stage(self) -> Stage:
        return Stage(self.value.split(".", 1)[0])


class Evidence(Contract):
    step_id: str | None = None
    output: JsonValue = None
    diff: list[str] = Field(default_factory=list)
    #: cheap evidence of later checks that also failed (code -> message)
    also_failed: dict[str, str] = Field(default_factory=dict)


class Rejection(Contract):
    sample_id: str
    stage: Stage
    code: RejectionCode
    message: str
    evidence: Evidence = Field(default_factory=Evidence)
    raw: str | None = None

    @field_validator("message", "raw")
    @classmethod
    def _writable_text(cls, text: str | None) -> str | None:
        """Model replies can hold lone surrogates (a JSON ``\\ud800`` escape), which UTF-8 and
        so the rejection's JSON line cannot carry: they are kept as visible escapes."""
        if text is None or text.isascii():
            return text
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    @model_validator(mode="after")
    def _stage_matches_code(self) -> Rejection:
        if self.code.stage is not self.stage:
            raise ValueError(f"code {self.code.value} does not belong to stage {self.stage.value}")
        return self


class Decision(StrEnum):
    CONFIRM_REJECT = "confirm_reject"
    OVERRIDE_ACCEPT = "override_accept"
    REJECT = "reject"  # a spot-checked accepted sample that the reviewer rejects


class Review(Contract):
    sample_id: str
    decision: Decision
    reviewer: str = Field(min_length=1)
    note: str = ""
    at: datetime


#: every contract, by the file name its JSON Schema is written to
CONTRACTS: dict[str, type[BaseModel]] = {
    "call": Call,
    "task": Task,
    "instance": Instance,
    "rejection": Rejection,
    "review": Review,
}
