"""Every file of a run folder, named once.

``output/runs/<run_id>/`` holds one run from candidates to release::

    .lock                      the process working in it (pipeline.runguard)
    manifest.json              what each stage did, one section each (pipeline.manifest)
    shards/ accepted.jsonl rejected.jsonl            validate
    seeds.jsonl evolve/round_NN/ evolved.jsonl evolve_rejected.jsonl rejected_tasks.jsonl  evolve
    compose/ instances.jsonl                          compose
    reviews.jsonl audit_report.html                   audit
    dataset/                                          publish
    eval/                                             eval

Stages take a :class:`RunDir` (or build one from a path) instead of joining names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUNS = "runs"
#: the run's manifest (:mod:`pipeline.manifest`); a release keeps its copy under the same name
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StageDir:
    """A folder of one sharded step (validation, one evolve round): its merged files and its
    shards."""

    path: Path

    @property
    def shards(self) -> Path:
        return self.path / "shards"

    @property
    def inputs(self) -> Path:
        """What defines the step (input hash, settings): a rerun under others is refused."""
        return self.path / "inputs.json"

    @property
    def accepted(self) -> Path:
        return self.path / "accepted.jsonl"

    @property
    def rejected(self) -> Path:
        return self.path / "rejected.jsonl"

    @property
    def rejected_tasks(self) -> Path:
        """The candidate tasks behind the rejections, for reviewers."""
        return self.path / "rejected_tasks.jsonl"

    @property
    def stats(self) -> Path:
        return self.path / "stats.json"


@dataclass(frozen=True)
class RunDir(StageDir):
    """The run folder: a stage folder too, whose merged files (``accepted.jsonl``,
    ``rejected.jsonl`` of validation, ``rejected_tasks.jsonl`` of evolve) sit at its top."""

    @classmethod
    def of(cls, output: Path, run_id: str) -> RunDir:
        return cls(output / RUNS / run_id)

    @property
    def name(self) -> str:
        return self.path.name

    # ----- the whole run ---------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    # ----- validate ----------------------------------------------------------------------
    @property
    def validation_inputs(self) -> Path:
        """The input hash and shard size the run validates: a rerun under others is refused."""
        return self.shards / "inputs.json"

    # ----- evolve ------------------------------------------------------------------------
    @property
    def seeds(self) -> Path:
        return self.path / "seeds.jsonl"

    @property
    def evolve(self) -> StageDir:
        return StageDir(self.path / "evolve")

    def round(self, number: int) -> StageDir:
        return StageDir(self.evolve.path / f"round_{number:02d}")

    @property
    def evolved(self) -> Path:
        """Every validated task of the run: the seeds that passed and what grew from them."""
        return self.path / "evolved.jsonl"

    @property
    def evolve_rejected(self) -> Path:
        return self.path / "evolve_rejected.jsonl"

    # ----- compose -----------------------------------------------------------------------
    @property
    def compose(self) -> Path:
        return self.path / "compose"

    @property
    def compose_specs(self) -> Path:
        return self.compose / "specs.jsonl"

    @property
    def compose_shards(self) -> Path:
        return self.compose / "shards"

    @property
    def long_context_left_out(self) -> Path:
        return self.compose / "long_context_left_out.jsonl"

    @property
    def instances(self) -> Path:
        return self.path / "instances.jsonl"

    # ----- audit, publish, eval ----------------------------------------------------------
    @property
    def reviews(self) -> Path:
        return self.path / "reviews.jsonl"

    @property
    def audit_report(self) -> Path:
        return self.path / "audit_report.html"

    @property
    def dataset(self) -> Path:
        return self.path / "dataset"

    @property
    def eval(self) -> Path:
        return self.path / "eval"
