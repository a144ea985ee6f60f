"""The run manifest (``manifest.json``): what each stage of a run did, one strict section each.

Layout of a run's manifest::

    {"run_id": ..., "gather": {...}, "validate": {...}, "evolve": {...}, "compose": {...}}

A section is present once its stage has run in the folder; a release's copy of the manifest
(``dataset/manifest.json``) adds ``published``, the counts of that release.

Writing: a stage records only its own section, with :func:`record_section`, which rereads the
file under the run lock and replaces it atomically, so the other stages' sections stay as they
were.

Reading is strict, like every other contract (:mod:`pipeline.models`): an unknown section or
field, or a value of the wrong type, is a :class:`ManifestError` naming the file and the field.
One layout is read leniently, because it converts without guessing: the flat manifest written
before sections existed (one stage's keys at the top, named by its ``stage`` key, plus
``sources``/``imports``/``compose`` from ``make dataset``) is moved into its sections on read,
then checked like any other. What the stages were given (``settings``, ``llm``) is kept as the
stage's own settings type wrote it: those types live with their stages and check themselves.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from pipeline.jsonl import write_atomic
from pipeline.rundir import RunDir
from pipeline.runguard import run_lock

#: a stage's settings or a client's learned facts, as the owning type dumped them
JsonObject = dict[str, JsonValue]
Count = Annotated[int, Field(ge=0)]
#: name (a rejection code, a split, a stage) -> how many
Counts = dict[str, Count]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ManifestError(ValueError):
    """A manifest that is not JSON, or does not fit the model; the message is one line."""


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Section(_Record):
    """One stage's record; ``KEY`` is its key in the manifest."""

    KEY: ClassVar[str]


# ----- gather (``make dataset``: the candidates and where they came from) --------------------
class ImportCounts(_Record):
    """The BFCL turn-level import: turns kept, merged into a neighbour, dropped (per code)."""

    tasks: Count
    turns_kept: Count
    turns_merged: Count
    turns_dropped: Count
    dropped_by_code: Counts
    upstream_skipped: Count
    duplicates: Count


class GatherSection(Section):
    KEY = "gather"

    sources: Counts  # source -> candidate tasks
    imports: ImportCounts | None = None


# ----- validate -------------------------------------------------------------------------------
class InputFile(_Record):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ValidateConfig(_Record):
    shard_size: int = Field(ge=1)
    runner: str  # inline, prefect-threads, prefect-dask


class ValidateCounts(_Record):
    input: Count
    accepted: Count
    rejected: Count
    rejected_by_stage: Counts
    rejected_by_code: Counts


class ValidateTimings(_Record):
    seconds: Seconds
    check_seconds: Seconds
    tasks_per_second: Seconds | None = None


class ValidateSection(Section):
    KEY = "validation"

    finished_at: datetime
    input: InputFile
    config: ValidateConfig
    versions: dict[str, str]  # package -> version
    counts: ValidateCounts
    timings: ValidateTimings


# ----- evolve ---------------------------------------------------------------------------------
class OperatorRecord(_Record):
    generated: Count
    accepted: Count
    rejected: Count
    skipped: Count  # parents the operator found nothing to do for
    acceptance_rate: float | None = None  # None when it generated nothing


class EvolveCounts(_Record):
    seeds: Count
    seeds_accepted: Count
    seeds_rejected: Count
    rounds: Count
    new_accepted: Count
    evolved: Count
    rejected: Count
    duplicates_merged: Count  # accepted candidates identical to a task already in the pool
    rejected_by_code: Counts


class JudgeSummary(_Record):
    """What the LLM judge did over the run (``pipeline.evolve.judge``)."""

    trusted_labels: list[str]  # the rubric labels whose "no" rejects, for the run's model
    trust_source: str  # the calibration they came from
    judged: Count
    not_judged: Count  # no usable answer from the endpoint: kept, never counted as agreed
    rejected: Count
    untrusted_no: Counts  # label -> "no" answers that rejected nothing
    not_judged_ids: list[str]


class EvolveSection(Section):
    KEY = "evolve"

    settings: JsonObject
    llm: JsonObject | None = None  # the endpoint's settings, never the key
    # what the client learned about the endpoint (output mode, token-cap name, tools)
    llm_endpoint: JsonObject | None = None
    counts: EvolveCounts
    operators: dict[str, OperatorRecord]
    token_usage: dict[str, Counts]  # stage -> counter -> value
    #: with --judge: the labels trusted to reject, tasks judged, not judged, rejected, and
    #: "no" answers per untrusted label (pipeline/evolve/judge.py)
    judge: JudgeSummary | None = None
    seconds: Seconds


# ----- compose --------------------------------------------------------------------------------
class LongContextReport(_Record):
    tasks_checked: Count
    tasks_without_mode: Count
    tasks_lengthened: Count
    tasks_left_out: Count
    left_out_by_code: Counts
    left_out_file: str | None = None  # relative to the run folder


class ComposeSection(Section):
    KEY = "compose"

    settings: JsonObject
    instances: Count
    attempts: Count | None = None
    per_split: Counts
    per_context: Counts = Field(default_factory=dict)
    long_context: LongContextReport | None = None  # only when some instances are long

    @classmethod
    def of(
        cls,
        settings: JsonObject,
        instances: int,
        summary: dict[str, Any],
        left_out_file: str | None = None,
    ) -> ComposeSection:
        """From a ``ComposeTally.summary()``. Its long-context report is kept when the tasks
        left out of long instances were written to ``left_out_file`` (the summary's
        ``long_context_left_out`` list goes there, not here)."""
        report = summary.get("long_context")
        long_context = None
        if left_out_file is not None and report is not None:
            long_context = LongContextReport(**report, left_out_file=left_out_file)
        return cls(
            settings=settings,
            instances=instances,
            attempts=summary.get("attempts"),
            per_split=dict(summary["per_split"]),
            per_context=dict(summary.get("per_context", {})),
            long_context=long_context,
        )


# ----- published (a release's copy only) ------------------------------------------------------
class DroppedRecord(_Record):
    id: str
    reason: str


class PublishedTasks(_Record):
    validated: Count
    repeated_lines_collapsed: Count
    overrides_published: list[str]
    removed_by_review: list[DroppedRecord]
    published: Count


class PublishedInstances(_Record):
    composed: Counts  # split -> instances in instances.jsonl
    removed_by_review: list[DroppedRecord]
    published: Count


class PublishedRejections(_Record):
    by_validator: Count
    by_review: Count
    by_code: Counts
    published: Count


class PublishedReviews(_Record):
    decisions: Count
    samples: Count
    superseded: Count
    latest: Counts  # decision -> samples it is the latest for
    overrides_not_published: list[DroppedRecord]
    rejects_of_unknown_samples: list[str]


class PublishedSection(Section):
    KEY = "published"

    rows: dict[str, Counts]  # config -> split -> rows
    tasks: PublishedTasks
    instances: PublishedInstances
    rejections: PublishedRejections
    reviews: PublishedReviews
    manifest_disagreements: list[str]  # where the stages' counts differ from the files


StageSection = GatherSection | ValidateSection | EvolveSection | ComposeSection


class Manifest(_Record):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)

    run_id: str = Field(min_length=1)
    gather: GatherSection | None = None
    # "validate" in the file: as a field name it would shadow BaseModel.validate
    validation: ValidateSection | None = Field(default=None, alias="validate")
    evolve: EvolveSection | None = None
    compose: ComposeSection | None = None
    published: PublishedSection | None = None

    def text(self) -> str:
        """The file's text: sections in stage order, absent ones left out."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# ----- reading --------------------------------------------------------------------------------
#: the keys the flat layout (before sections) kept at the top beside its one stage's keys
_FLAT_SHARED = ("run_id", "stage", "sources", "imports", "compose")


def _unflatten(data: dict[str, Any]) -> dict[str, Any]:
    """The flat layout's keys moved into sections; any other layout is returned as it is."""
    stage = data.get("stage")
    if stage not in ("validate", "evolve"):
        return data
    out: dict[str, Any] = {"run_id": data.get("run_id")}
    if "sources" in data or "imports" in data:
        imports = data.get("imports") or None  # an import-less run wrote {}
        out["gather"] = {"sources": data.get("sources", {}), "imports": imports}
    out[stage] = {key: value for key, value in data.items() if key not in _FLAT_SHARED}
    if "compose" in data:
        out["compose"] = data["compose"]
    return out


def _first_error(error: ValidationError) -> str:
    problem = error.errors()[0]
    field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    what = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"]
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{field}: {what}{more}"


def parse_manifest(text: str, source: Path) -> Manifest:
    """``text`` read through the model; ``source`` names the file in errors."""
    hint = "rerun the stage that wrote it, or move the file aside"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{source} is not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{source} is not a JSON object; {hint}")
    try:
        return Manifest.model_validate_json(json.dumps(_unflatten(data)))
    except ValidationError as error:
        raise ManifestError(
            f"{source} does not fit the run manifest: {_first_error(error)}; {hint}"
        ) from None


def read_manifest(run_dir: Path) -> Manifest | None:
    """The run's manifest, or None when no stage has recorded one yet."""
    path = RunDir(run_dir).manifest
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text") from None
    return parse_manifest(text, path)


# ----- writing --------------------------------------------------------------------------------
def record_section(run_dir: Path, section: StageSection) -> Manifest:
    """Put ``section`` in the run's manifest in place of the stage's earlier one, keeping every
    other section; the file is replaced atomically under the run lock. Returns the manifest."""
    run = RunDir(run_dir)
    with run_lock(run_dir):
        before = read_manifest(run_dir) or Manifest(run_id=run.name)
        after = before.model_copy(update={section.KEY: section})
        write_atomic(run.manifest, after.text())
    return after


def release_manifest(
    manifest: Manifest | None, run_id: str, published: PublishedSection
) -> Manifest:
    """A release's copy: the run's manifest (if it had one) with the release's counts."""
    base = manifest or Manifest(run_id=run_id)
    return base.model_copy(update={PublishedSection.KEY: published})


__all__ = [
    "ComposeSection",
    "EvolveSection",
    "GatherSection",
    "Manifest",
    "ManifestError",
    "PublishedSection",
    "ValidateSection",
    "parse_manifest",
    "read_manifest",
    "record_section",
    "release_manifest",
]
