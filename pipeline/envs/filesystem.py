"""Filesystem: an in-memory directory tree with a current directory (BFCL ``GorillaFileSystem``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class FilesystemState(EnvState):
    """TODO: the state of the filesystem environment."""


class Filesystem(Environment[FilesystemState]):
    name = "filesystem"
    state_model = FilesystemState
    bfcl_class = "GorillaFileSystem"
