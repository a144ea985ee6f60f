"""Where an evaluation reads its instances.

* A **published dataset**: a folder as ``asynctool publish`` writes it (``output/runs/<run>/
  dataset``), or a Hub dataset repo at a revision (its card and the ``multi`` config's Parquet
  files are downloaded with ``huggingface_hub``). Rows are read with ``datasets`` and turned
  back into ``Instance`` contracts; the splits are the published ones.
* A **run folder**: its published dataset when there is one (what reviewers let through), else
  ``instances.jsonl`` without the instances holding a task a reviewer rejected.

Whatever is read, ``EvalSource.label`` says it in one line, and ``notes`` say what was left out
or may be stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from pipeline.jsonl import read_records
from pipeline.long_context_variants import made_from
from pipeline.models import Instance, Task
from pipeline.names import check_repo_id
from pipeline.rundir import RunDir
from pipeline.splits import DEFAULT_TEST_FRACTION, root_ancestors, split_of

#: the config of the published dataset that holds the multi-task instances
MULTI = "multi"
CARD = "README.md"

SourceKind = Literal["dataset", "hub", "run"]


class SourceError(ValueError):
    """The dataset to evaluate cannot be found or read; the message says which and why."""


@dataclass(frozen=True)
class EvalSource:
    kind: SourceKind
    #: the folder instances are read from: a dataset folder (local or a Hub snapshot) or a run
    folder: Path
    #: one line for the user: what is evaluated
    label: str
    #: a few words for the summary tables' ``source`` column
    short: str
    #: where the evaluation's files go unless ``--out`` says otherwise
    eval_dir: Path
    notes: list[str] = field(default_factory=list)

    def load(self, split: str, test_fraction: float = DEFAULT_TEST_FRACTION) -> list[Instance]:
        return load_instances(self.folder, split, test_fraction, self.notes)


def is_dataset_folder(path: Path) -> bool:
    return (path / CARD).is_file() and (path / "data").is_dir()


def _is_run_folder(path: Path) -> bool:
    return RunDir(path).instances.is_file() or RunDir(path).evolved.is_file()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def run_source(run_dir: Path) -> EvalSource:
    """A run: its published dataset if it has one, else its own files."""
    published = RunDir(run_dir).dataset
    if is_dataset_folder(published):
        notes = _stale_notes(run_dir, published)
        label = f"published dataset {published} (after review)"
        eval_dir = RunDir(run_dir).eval
        return EvalSource("dataset", run_dir, label, "published dataset", eval_dir, notes)
    run = RunDir(run_dir)
    label = f"{run.instances} (not published: instances a reviewer rejected are left out)"
    return EvalSource("run", run_dir, label, run.instances.name, run.eval)


def _stale_notes(run_dir: Path, published: Path) -> list[str]:
    built = (published / CARD).stat().st_mtime
    run = RunDir(run_dir)
    newer = [
        path.name
        for path in (run.evolved, run.instances, run.reviews)
        if path.is_file() and path.stat().st_mtime > built
    ]
    if not newer:
        return []
    return [
        f"{', '.join(newer)} changed after {published} was published; evaluating the published "
        f"rows (run `asynctool publish --run-dir {run_dir}` to include the changes)"
    ]


def dataset_source(
    dataset: str, revision: str | None, endpoint: str | None, output: Path
) -> EvalSource:
    """``dataset`` is a local dataset folder when such a path exists, else a Hub repo id."""
    path = Path(dataset)
    if path.exists():
        if revision is not None:
            raise SourceError(f"--revision is for a Hub repo id; {dataset} is a local folder")
        return local_dataset_source(path, output)
    try:
        repo_id = check_repo_id(dataset)
    except ValueError:
        raise SourceError(
            f"{dataset!r} is neither a dataset folder (no such path) nor a Hub repo id user/name"
        ) from None
    return hub_source(repo_id, revision, endpoint, output)


def local_dataset_source(folder: Path, output: Path) -> EvalSource:
    if not is_dataset_folder(folder):
        hint = " (it is a run folder: use --run-dir)" if _is_run_folder(folder) else ""
        raise SourceError(
            f"{folder} is not a published dataset folder: it needs {CARD} and data/{hint}"
        )
    parent = folder.resolve().parent
    if folder.resolve() == RunDir(parent).dataset and _is_run_folder(parent):
        eval_dir = RunDir(parent).eval  # the same place `eval --run` writes for this dataset
    else:
        eval_dir = output / "eval" / f"{folder.resolve().name}-{_digest(str(folder.resolve()))}"
    return EvalSource("dataset", folder, f"published dataset {folder}", str(folder), eval_dir)


def _hub_slug(repo_id: str, revision: str | None) -> str:
    owner, name = repo_id.split("/", 1)
    tail = "".join(c if c.isalnum() or c in "._-" else "_" for c in revision or "main")
    return f"{owner}--{name}@{tail}"


def hub_source(
    repo_id: str, revision: str | None, endpoint: str | None, output: Path
) -> EvalSource:
    folder, commit = download_multi(repo_id, revision, endpoint)
    at = revision or "main"
    label = f"Hub dataset {repo_id} at revision {at} (commit {commit[:12]})"
    short = f"{repo_id}@{at}"
    return EvalSource("hub", folder, label, short, output / "eval" / _hub_slug(repo_id, revision))


def download_multi(repo_id: str, revision: str | None, endpoint: str | None) -> tuple[Path, str]:
    """The card and the ``multi`` config's files of ``repo_id`` at ``revision``, in the local
    Hub cache; returns the snapshot folder and its commit."""
    from huggingface_hub import constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id} at revision {revision or 'main'}"
    # offline (as every make target runs), a revision downloaded before comes from the cache
    offline = bool(constants.HF_HUB_OFFLINE)
    common: dict[str, Any] = {
        "repo_type": "dataset",
        "endpoint": endpoint,
        "local_files_only": offline,
    }
    try:
        # the card first (its path names the commit the revision points to, and the cache
        # remembers the revision), then that commit's multi-config files
        card = Path(hf_hub_download(repo_id, CARD, revision=revision, **common))
        commit = card.parent.name
        patterns = [CARD, *(pattern for paths in _config_files(card).values()
                            for pattern in paths)]  # fmt: skip
        folder = snapshot_download(repo_id, revision=commit, allow_patterns=patterns, **common)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):  # before EntryNotFoundError, its base
        raise SourceError(
            f"{where} is not in the local Hub cache and HF_HUB_OFFLINE is set: unset it "
            "(`make eval DATASET=...` does) to download it"
        ) from None
    except RevisionNotFoundError:
        raise SourceError(f"the Hub dataset {repo_id} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise SourceError(f"there is no Hub dataset {repo_id} (or it is private)") from None
    except EntryNotFoundError:
        raise SourceError(f"{where} has no {CARD}: not a dataset asynctool published") from None
    except HfHubHTTPError as error:
        raise SourceError(f"the Hub refused {where}: {str(error).splitlines()[0]}") from None
    except OSError as error:  # connection refused, DNS, timeouts (httpx errors are OSErrors)
        raise SourceError(f"cannot reach the Hub for {where}: {error}") from None
    return Path(folder), commit


def _config_files(card: Path) -> dict[str, list[str]]:
    """Split -> data file paths (or patterns) of the ``multi`` config, as the card declares."""
    from huggingface_hub.repocard import metadata_load

    try:
        metadata = metadata_load(card) or {}
    except (ValueError, OSError) as error:
        raise SourceError(f"{card}: unreadable card metadata: {error}") from None
    configs = metadata.get("configs") if isinstance(metadata, Mapping) else None
    for config in configs if isinstance(configs, list) else []:
        if isinstance(config, Mapping) and config.get("config_name") == MULTI:
            return _split_paths(card, config.get("data_files"))
    return {}  # no instances were published


def _split_paths(card: Path, data_files: Any) -> dict[str, list[str]]:
    entries = data_files if isinstance(data_files, list) else []
    splits: dict[str, list[str]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("split"), str):
            raise SourceError(f"{card}: the {MULTI} config's data_files are not split/path pairs")
        paths = entry.get("path")
        listed = [paths] if isinstance(paths, str) else paths
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise SourceError(f"{card}: the {MULTI} config names no files for {entry['split']}")
        splits.setdefault(entry["split"], []).extend(listed)
    return splits


def _files(folder: Path, patterns: list[str]) -> list[Path]:
    """The files a card lists, named inside the folder (a Hub snapshot's files are links into
    the cache's blobs, so the names are checked, not where they lead)."""
    found: list[Path] = []
    for pattern in patterns:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise SourceError(f"{folder / CARD} names a data file outside the folder: {pattern}")
        matches = sorted(folder.glob(pattern))
        if not matches:
            raise SourceError(f"{folder / CARD} lists {pattern}, which is not in {folder}")
        found.extend(matches)
    return found


def published_instances(folder: Path, split: str) -> list[Instance]:
    """The instances of ``split`` (``all``: every split) in a published dataset folder."""
    import datasets

    splits = _config_files(folder / CARD)
    wanted = sorted(splits) if split == "all" else [split] if split in splits else []
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # one line per split file is noise on the command line
    try:
        instances: list[Instance] = []
        for name in wanted:
            files = _files(folder, splits[name])
            rows = datasets.load_dataset(
                "parquet", data_files={name: [str(f) for f in files]}, split=name
            )
            instances.extend(_instance(row, files, number) for number, row in enumerate(rows, 1))
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    return instances


def _instance(row: Mapping[str, Any], files: list[Path], number: int) -> Instance:
    from pipeline.publish.rows import row_to_instance

    where = files[0] if len(files) == 1 else files[0].parent
    try:
        return row_to_instance(row)
    except ValidationError as error:
        first = error.errors()[0]
        place = ".".join(str(part) for part in first["loc"]) or "row"
        raise SourceError(
            f"{where}: row {number} (instance {str(row.get('id'))[:80]!r}) is not a valid "
            f"instance: {place}: {first['msg']}"
        ) from None
    except KeyError as missing:
        raise SourceError(f"{where}: row {number} has no column {missing}") from None


def run_instances(
    run_dir: Path, split: str, test_fraction: float, notes: list[str] | None = None
) -> list[Instance]:
    """``instances.jsonl`` of a run without a published dataset, minus reviewers' rejects."""
    from pipeline.audit.overrides import rejected_by_review

    instances = list(read_records(RunDir(run_dir).instances, Instance))
    dropped = rejected_by_review(run_dir)
    # a long-context variant goes with the task it was made from
    kept = [i for i in instances if not any(made_from(task) in dropped for task in i.tasks)]
    if len(kept) < len(instances) and notes is not None:
        notes.append(
            f"{len(instances) - len(kept)} instances left out: they hold a task a reviewer "
            f"rejected ({len(dropped)} tasks rejected in {RunDir(run_dir).reviews})"
        )
    if split == "all":
        return kept
    # instance tasks join the lineage: a long-context variant descends from a pool task
    pool = list(read_records(RunDir(run_dir).evolved, Task))
    roots = root_ancestors([*pool, *(task for i in kept for task in i.tasks)])
    return [
        i
        for i in kept
        if split_of(roots.get(i.tasks[0].id, i.tasks[0].id), test_fraction).value == split
    ]


def load_instances(
    folder: Path,
    split: str,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    notes: list[str] | None = None,
) -> list[Instance]:
    """The instances of ``split`` in a dataset folder, or in a run folder (its published
    dataset if any). Deterministic: shards of a distributed evaluation call it too."""
    if is_dataset_folder(folder):
        return published_instances(folder, split)
    if is_dataset_folder(RunDir(folder).dataset):
        return published_instances(RunDir(folder).dataset, split)
    return run_instances(folder, split, test_fraction, notes)
