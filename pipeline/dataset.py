"""The end-to-end job behind ``make dataset``, running the stages that exist so far.

Stages: gather seeds (the project's seeds, plus BFCL tasks imported at turn granularity when
the peer data is present); evolve them — round 0 validates every seed with the validation
chain, later rounds grow validated tasks with the operators (the programmatic ones offline);
compose multi-task instances; publish the Hugging Face dataset folder. Everything lands in
``output/runs/<run_id>/``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.bfcl.importer import Granularity, ImportReport, import_bfcl, multi_turn_files
from pipeline.compose import ComposeSettings
from pipeline.compose_stage import run_compose
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.jsonl import read_records, write_records
from pipeline.llm import LLMConfig
from pipeline.manifest import (
    EvolveSection,
    GatherSection,
    ImportCounts,
    Manifest,
    read_manifest,
    record_section,
)
from pipeline.models import Task
from pipeline.names import DEFAULT_BFCL, new_run_id
from pipeline.rundir import RunDir
from pipeline.seeds import SEED_DIR, load_seeds
from pipeline.shards import run_inline

if TYPE_CHECKING:
    from pipeline.publish.counts import ReleaseCounts


@dataclass
class DatasetSummary:
    run_dir: Path
    sources: dict[str, int]
    manifest: Manifest  # the run's, as recorded by its stages
    folder: Path
    counts: ReleaseCounts  # what was published, and every drop on the way

    @property
    def evolve(self) -> EvolveSection:
        assert self.manifest.evolve is not None  # build_dataset evolved before publishing
        return self.manifest.evolve

    @property
    def imports(self) -> ImportCounts | None:
        return self.manifest.gather.imports if self.manifest.gather is not None else None


@dataclass
class Gathered:
    """What ``gather_candidates`` wrote: counts per source and the BFCL import's report."""

    sources: dict[str, int]
    report: ImportReport | None = None

    def section(self) -> GatherSection:
        """The manifest's record of the candidates: counts per source, and the import's turns
        kept, merged and dropped (per code)."""
        report = self.report
        imports = None
        if report is not None:
            imports = ImportCounts(
                tasks=len(report.tasks),
                turns_kept=report.kept,
                turns_merged=report.merged,
                turns_dropped=len(report.dropped),
                dropped_by_code=dict(report.dropped_by_code().most_common()),
                upstream_skipped=len(report.skipped),
                duplicates=report.duplicates,
            )
        return GatherSection(sources=dict(self.sources), imports=imports)


def gather_candidates(target: Path, bfcl_folder: Path | None = DEFAULT_BFCL) -> Gathered:
    """Write the seeds (and BFCL turn-level imports when available) to ``target``."""
    candidates: list[Task] = load_seeds(SEED_DIR)
    sources: Counter[str] = Counter({"seeds": len(candidates)})
    report = None
    if bfcl_folder is not None and bfcl_folder.is_dir():
        report = import_bfcl(multi_turn_files(bfcl_folder), Granularity.TURN)
        candidates.extend(report.tasks)
        sources["bfcl"] = len(report.tasks)
    write_records(target, candidates)
    return Gathered(dict(sources), report)


def build_dataset(
    output_root: Path,
    run_id: str | None = None,
    bfcl_folder: Path | None = DEFAULT_BFCL,
    use_prefect: bool = True,
    settings: EvolveSettings | None = None,
    llm: LLMConfig | None = None,
    compose_settings: ComposeSettings | None = None,
    version: str = "0.1.0",
) -> DatasetSummary:
    run_dir = RunDir.of(output_root, run_id or new_run_id()).path
    read_manifest(run_dir)  # an unreadable manifest is refused now, not after the work
    candidates = RunDir(run_dir).seeds
    gathered = gather_candidates(candidates, bfcl_folder)
    sources = gathered.sources
    record_section(run_dir, gathered.section())
    settings = settings or EvolveSettings()
    if use_prefect:
        from pipeline.flows import run_evolve_flow

        run_evolve_flow(candidates, run_dir, settings, llm)
    else:
        seeds = list(read_records(candidates, Task))
        evolve(seeds, run_dir, settings, llm)
    run_compose(run_dir, compose_settings or ComposeSettings(), run_inline)
    manifest = read_manifest(run_dir)
    assert manifest is not None  # every stage above recorded its section
    from pipeline.publish import publish_run  # datasets and pyarrow load only when publishing

    published = publish_run(run_dir, version)
    return DatasetSummary(run_dir, sources, manifest, published.folder, published.counts)
