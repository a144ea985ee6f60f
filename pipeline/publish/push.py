"""Push a dataset folder to the Hugging Face Hub as one commit plus a version tag.

The pushed card names the repository and tag it is pushed to (its loading and evaluation
examples are rewritten for them). The commit's title carries the version and a digest of
everything sent, so a rerun after a failed tag step finds that commit at the head of the branch
and tags it instead of committing the same content again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client
from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError
from huggingface_hub.repocard import metadata_load

from pipeline.jsonl import file_sha256
from pipeline.names import check_repo_id
from pipeline.publish.card import CardError, retarget_card
from pipeline.publish.version import tag_of

REPO_TYPE = "dataset"
BRANCH = "main"
CARD = "README.md"
TITLE_DIGEST = 16  # hex digits of the content digest in the commit title


class PushError(ValueError):
    """The push cannot start; nothing was sent."""


class TagError(RuntimeError):
    """The commit is on the Hub but the tag step failed; a rerun tags that commit."""

    def __init__(self, repo_id: str, tag: str, commit_url: str, reason: str) -> None:
        super().__init__(
            f"committed {commit_url} to {repo_id}, but tagging it {tag} failed: {reason}. "
            f"The commit stays untagged; rerun the same push to tag it (it will not be "
            f"committed again)."
        )
        self.commit_url = commit_url


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
    #: the commit was already on the branch (a rerun after a failed tag step); only tagged now
    reused_commit: bool = False

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


@dataclass(frozen=True)
class _Payload:
    """What a push sends: the folder's files, its card retargeted to the repository."""

    folder: Path
    card: bytes
    sha256: dict[str, str]  # path -> digest of the bytes sent

    def source(self, path: str) -> Path | bytes:
        return self.card if path == CARD else self.folder / path

    def size(self, path: str) -> int:
        return len(self.card) if path == CARD else (self.folder / path).stat().st_size


def _payload(folder: Path, files: list[FolderFile], repo_id: str, tag: str) -> _Payload:
    try:
        card = retarget_card((folder / CARD).read_text("utf-8"), repo_id, tag).encode("utf-8")
    except CardError as error:
        raise PushError(f"{folder / CARD}: {error}; rebuild it with `asynctool publish`") from None
    digests = {item.path: file_sha256(folder / item.path) for item in files if item.path != CARD}
    digests[CARD] = hashlib.sha256(card).hexdigest()
    return _Payload(folder, card, digests)


def commit_title(tag: str, payload: _Payload) -> str:
    listing = "".join(f"{path} {payload.sha256[path]}\n" for path in sorted(payload.sha256))
    digest = hashlib.sha256(listing.encode()).hexdigest()
    return f"AsyncTool Forge dataset {tag} (content {digest[:TITLE_DIGEST]})"


def _head_commit(api: HfApi, repo_id: str) -> tuple[str, str] | None:
    """(id, title) of the newest commit on the branch, or None for a repository without one."""
    try:
        commits = api.list_repo_commits(repo_id, repo_type=REPO_TYPE, revision=BRANCH)
    except RevisionNotFoundError:
        return None
    return (commits[0].commit_id, commits[0].title) if commits else None


def _commit_url(api: HfApi, repo_id: str, oid: str) -> str:
    return f"{api.endpoint}/datasets/{repo_id}/commit/{oid}"


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
    checks the inputs and lists what would be uploaded. If the newest commit on the branch
    already holds exactly this content for this version (a rerun after a failed tag step), that
    commit is tagged and nothing is committed. A failed tag step raises :class:`TagError`.
    """
    tag = tag_of(version)
    try:
        check_repo_id(repo_id)
    except ValueError as error:
        raise PushError(str(error)) from None
    _check_folder(folder, version)
    files = folder_files(folder)
    payload = _payload(folder, files, repo_id, tag)
    listed = tuple(FolderFile(item.path, payload.size(item.path)) for item in files)
    if dry_run:
        return PushResult(repo_id, version, tag, listed, dry_run=True)
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
    title = commit_title(tag, payload)
    head = _head_commit(api, repo_id)
    if head is not None and head[1] == title:
        oid, url, reused = head[0], _commit_url(api, repo_id, head[0]), True
    else:
        # create_commit, not upload_folder: with hf_xet installed upload_folder may split a
        # large folder into several commits, and a version must be exactly one commit.
        operations = [
            CommitOperationAdd(path_in_repo=item.path, path_or_fileobj=payload.source(item.path))
            for item in files
        ]
        commit = api.create_commit(
            repo_id, operations=operations, commit_message=title, repo_type=REPO_TYPE
        )
        oid, url, reused = commit.oid, commit.commit_url, False
    try:
        api.create_tag(
            repo_id,
            tag=tag,
            tag_message=f"AsyncTool Forge dataset version {version}",
            revision=oid,
            repo_type=REPO_TYPE,
        )
    except (HfHubHTTPError, httpx2.TransportError) as error:
        raise TagError(repo_id, tag, url, str(error).splitlines()[0]) from error
    return PushResult(repo_id, version, tag, listed, False, url, oid, reused)
