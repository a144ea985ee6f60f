"""Push a dataset folder to the Hugging Face Hub as one commit plus a version tag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.repocard import metadata_load

from pipeline.names import check_repo_id
from pipeline.publish.version import tag_of

REPO_TYPE = "dataset"


class PushError(ValueError):
    """The push cannot start; nothing was sent."""


@dataclass(frozen=True)
class FolderFile:
    path: str  # POSIX path inside the repository
    size: int


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    version: str
    tag: str
    files: tuple[FolderFile, ...]
    dry_run: bool
    commit_url: str | None = None
    commit_oid: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)


def folder_files(folder: Path) -> list[FolderFile]:
    """Every file to upload, sorted; hidden files (editor or staging leftovers) are skipped."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found.append(FolderFile(relative.as_posix(), path.stat().st_size))
    return sorted(found, key=lambda item: item.path)


def _check_folder(folder: Path, version: str) -> None:
    card = folder / "README.md"
    if not card.is_file():
        raise PushError(
            f"no dataset folder at {folder} (README.md missing): run `asynctool publish`"
        )
    built = (metadata_load(card) or {}).get("version")
    if built != version:
        raise PushError(
            f"{folder} was built as version {built}, not {version}: "
            f"run `asynctool publish --version {version}` first"
        )


def push_folder(
    folder: Path,
    repo_id: str,
    version: str,
    token: str | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
) -> PushResult:
    """Create the dataset repo if needed, commit every file of ``folder`` at once, tag the commit.

    ``token`` defaults to ``HF_TOKEN`` or the login stored by ``hf auth login``. A dry run only
    checks the inputs and lists what would be uploaded.
    """
    tag = tag_of(version)
    try:
        check_repo_id(repo_id)
    except ValueError as error:
        raise PushError(str(error)) from None
    _check_folder(folder, version)
    files = tuple(folder_files(folder))
    if dry_run:
        return PushResult(repo_id, version, tag, files, dry_run=True)
    if constants.is_offline_mode():
        raise PushError(
            "HF_HUB_OFFLINE is set (the Makefile sets it for the other targets): unset it"
        )
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True)
    # Versions are immutable: refuse before committing rather than leave an untagged commit.
    if any(ref.name == tag for ref in api.list_repo_refs(repo_id, repo_type=REPO_TYPE).tags):
        raise PushError(f"{repo_id} already has the tag {tag}: publish a new version")
    # create_commit, not upload_folder: with hf_xet installed upload_folder may split a large
    # folder into several commits, and a version must be exactly one commit.
    operations = [
        CommitOperationAdd(path_in_repo=item.path, path_or_fileobj=folder / item.path)
        for item in files
    ]
    commit = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=f"AsyncTool Forge dataset {tag}",
        repo_type=REPO_TYPE,
    )
    api.create_tag(
        repo_id,
        tag=tag,
        tag_message=f"AsyncTool Forge dataset version {version}",
        revision=commit.oid,
        repo_type=REPO_TYPE,
    )
    return PushResult(repo_id, version, tag, files, False, commit.commit_url, commit.oid)
