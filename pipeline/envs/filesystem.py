"""Filesystem: an in-memory directory tree with a current directory (BFCL ``GorillaFileSystem``).

Everything lives in the state's ``root`` tree; no name or path given to a tool ever reaches the
host's filesystem (this module never imports ``os`` or ``pathlib``). Tools work on entries of the
current directory only; ``cd`` (and ``find``'s ``path``) are the only ones that take a path.

Latencies: these stand for a remote shell on a networked file service. Reading one small file or
listing a directory costs one round trip (~0.05-0.1 s); writes go through a journal and a
metadata update (~0.1-0.2 s); copies and moves touch several entries (~0.2-0.3 s); recursive
walks (``find``, ``du``) scan a whole subtree (~0.3 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, JsonValue, model_validator

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.envs.long_context import (
    EXTRA_FILE_NAMES,
    FILE_CONTENT_EXTENSION,
    FILES_KEPT_SHORT,
)
from pipeline.semantics import Sem

_NAV = 0.05
_READ = 0.08
_WRITE = 0.15
_COPY = 0.25
_WALK = 0.3

MAX_NAME = 255
MAX_PATH = 4096
MAX_FILE_CHARS = 1_000_000
MAX_TOTAL_CHARS = 8_000_000
MAX_ENTRIES = 10_000
MAX_DEPTH = 64
_SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")
#: the extra file of the perturbed state (see ``Environment.perturbed``)
_PROBE = "~probe.txt"


class FileNode(EnvState):
    """A regular file and its text content."""

    type: Literal["file"] = "file"
    content: str = ""


class DirNode(EnvState):
    """A directory: entry name -> file or directory, in creation order."""

    type: Literal["directory"] = "directory"
    contents: dict[str, Node] = {}


Node = Annotated[FileNode | DirNode, Field(discriminator="type")]
DirNode.model_rebuild()


def _show(name: str) -> str:
    """A name quoted for a message, cut short so hostile inputs do not flood the output."""
    return repr(name if len(name) <= 60 else name[:57] + "...")


def _name_problem(name: str) -> str | None:
    if not name:
        return "a name cannot be empty"
    if len(name) > MAX_NAME:
        return f"a name can have at most {MAX_NAME} characters (got {len(name)})"
    if "\x00" in name:
        return "a name cannot contain a NUL character"
    if "/" in name:
        return f"{_show(name)} is a path; give the name of an entry in the current directory"
    if name in (".", ".."):
        return f"{_show(name)} is not an entry name"
    return None


def _measure(node: FileNode | DirNode) -> tuple[int, int, int]:
    """(entries, characters, levels) of a subtree; a file or an empty directory is one level."""
    if isinstance(node, FileNode):
        return 1, len(node.content), 1
    entries, chars, deepest = 1, 0, 0
    for child in node.contents.values():
        child_entries, child_chars, child_levels = _measure(child)
        entries += child_entries
        chars += child_chars
        deepest = max(deepest, child_levels)
    return entries, chars, deepest + 1


def _lines(content: str) -> list[str]:
    return content.splitlines()


def _long_context_tree(node: Any) -> Any:
    """A copy of an upstream directory entry with upstream's long-context additions: every
    file not in ``FILES_KEPT_SHORT`` gets ``FILE_CONTENT_EXTENSION`` appended, and every
    directory without subdirectories gets the empty files ``EXTRA_FILE_NAMES`` after its own
    entries (an existing entry of the same name is kept)."""
    if not isinstance(node, Mapping) or node.get("type") != "directory":
        return node
    contents = node.get("contents")
    if not isinstance(contents, Mapping):
        return node
    copied: dict[str, Any] = {}
    has_subdirectory = False
    for name, child in contents.items():
        if isinstance(child, Mapping) and child.get("type") == "directory":
            has_subdirectory = True
            copied[name] = _long_context_tree(child)
        elif (
            isinstance(child, Mapping)
            and child.get("type") == "file"
            and isinstance(child.get("content"), str)
            and name not in FILES_KEPT_SHORT
        ):
            copied[name] = {
                **child,
                "content": child["content"] + FILE_CONTENT_EXTENSION,
            }
        else:
            copied[name] = child
    if not has_subdirectory:
        for name in EXTRA_FILE_NAMES:
            copied.setdefault(name, {"type": "file", "content": ""})
    return {**node, "contents": copied}


class FilesystemState(EnvState):
    """The tree (``root`` holds exactly one top directory) and the current directory."""

    long_context: bool = False
    root: dict[str, DirNode] = {"workspace": DirNode()}
    #: names from the top directory down to the current one (empty: at the top directory)
    cwd: list[str] = []

    @model_validator(mode="after")
    def _check_tree(self) -> FilesystemState:
        if len(self.root) != 1:
            raise ValueError(f"root must hold exactly one top directory (got {len(self.root)})")
        top = next(iter(self.root.values()))
        entries, chars, levels = _measure(top)
        if entries > MAX_ENTRIES + 1 or chars > MAX_TOTAL_CHARS or levels > MAX_DEPTH + 1:
            raise ValueError("the tree exceeds the size limits of the filesystem")
        stack: list[DirNode] = [top]
        while stack:
            node = stack.pop()
            for name, child in node.contents.items():
                problem = _name_problem(name)
                if problem:
                    raise ValueError(f"bad entry name: {problem}")
                if isinstance(child, DirNode):
                    stack.append(child)
                elif len(child.content) > MAX_FILE_CHARS:
                    raise ValueError(f"file {_show(name)} exceeds {MAX_FILE_CHARS} characters")
        here = top
        for part in self.cwd:
            below = here.contents.get(part)
            if not isinstance(below, DirNode):
                raise ValueError(f"cwd {self.cwd!r} is not a directory of the tree")
            here = below
        return self


class Filesystem(Environment[FilesystemState]):
    name = "filesystem"
    state_model = FilesystemState
    bfcl_class = "GorillaFileSystem"
    internal_fields: ClassVar[frozenset[str]] = frozenset({"cwd"})

    @classmethod
    def perturbed(cls, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Every folder gains one more file, of a size that differs by depth."""
        data = FilesystemState.model_validate(dict(state or {})).model_dump(mode="json")
        stack = [(node, 1) for node in data["root"].values()]
        while stack:
            node, depth = stack.pop()
            stack += [
                (child, depth + 1)
                for child in node["contents"].values()
                if child["type"] == "directory"
            ]
            node["contents"].setdefault(_PROBE, {"type": "file", "content": "probe " * depth})
        return data

    # ----- construction and BFCL view -------------------------------------------------
    @classmethod
    def from_bfcl_config(cls, config: Mapping[str, Any]) -> Filesystem:
        """Upstream keeps only the first top-level directory of ``root`` and starts in it."""
        state: dict[str, Any] = {}
        root = config.get("root")
        if isinstance(root, Mapping) and root:
            first = next(iter(root))
            state["root"] = {first: root[first]}
        if "long_context" in config:
            state["long_context"] = config["long_context"]
        if state.get("long_context") is True and "root" in state:
            state["root"] = {name: _long_context_tree(node) for name, node in state["root"].items()}
        env = cls.from_state(state)
        assert isinstance(env, Filesystem)
        return env

    def bfcl_state(self) -> dict[str, Any]:
        data = super().bfcl_state()
        data["__cwd__"] = self._path_text(self.state.cwd)
        return data

    # ----- helpers --------------------------------------------------------------------
    @property
    def _top_name(self) -> str:
        return next(iter(self.state.root))

    def _path_text(self, parts: list[str]) -> str:
        return "/" + "/".join([self._top_name, *parts])

    def _dir_at(self, parts: list[str]) -> DirNode:
        node = self.state.root[self._top_name]
        for part in parts:
            child = node.contents[part]
            assert isinstance(child, DirNode)
            node = child
        return node

    def ambient(self) -> JsonValue:
        return self._path_text(self.state.cwd)

    @property
    def _here(self) -> DirNode:
        return self._dir_at(self.state.cwd)

    def _resolve(self, command: str, path: str) -> list[str]:
        """Walk ``path`` (relative to the current directory, or absolute from ``/<top>``) to a
        directory and return its components; nothing is changed."""
        if not path:
            raise ToolError(f"{command}: the path is empty")
        if len(path) > MAX_PATH:
            raise ToolError(f"{command}: a path can have at most {MAX_PATH} characters")
        if "\x00" in path:
            raise ToolError(f"{command}: a path cannot contain a NUL character")
        parts = path.split("/")
        if path.startswith("/"):
            names = [part for part in parts if part not in ("", ".")]
            if not names:
                return []
            if names[0] != self._top_name:
                raise ToolError(
                    f"{command}: {_show(path)} does not exist; absolute paths start with "
                    f"{self._path_text([])}"
                )
            parts, current = names[1:], []
        else:
            current = list(self.state.cwd)
        node = self._dir_at(current)
        for part in parts:
            if part in ("", "."):
                continue
            if part == "..":
                if not current:
                    raise ToolError(
                        f"{command}: cannot go above the top directory {self._path_text([])}"
                    )
                current.pop()
                node = self._dir_at(current)
                continue
            child = node.contents.get(part)
            if child is None:
                raise ToolError(
                    f"{command}: no directory {_show(part)} in {self._path_text(current)}"
                )
            if not isinstance(child, DirNode):
                raise ToolError(f"{command}: {_show(part)} is a file, not a directory")
            current.append(part)
            node = child
        return current

    def _checked_name(self, command: str, name: str) -> str:
        problem = _name_problem(name)
        if problem:
            raise ToolError(f"{command}: {problem}")
        return name

    def _entry(self, command: str, name: str) -> FileNode | DirNode:
        self._checked_name(command, name)
        node = self._here.contents.get(name)
        if node is None:
            where = self._path_text(self.state.cwd)
            raise ToolError(f"{command}: no file or directory {_show(name)} in {where}")
        return node

    def _file(self, command: str, name: str) -> FileNode:
        node = self._entry(command, name)
        if not isinstance(node, FileNode):
            raise ToolError(f"{command}: {_show(name)} is a directory, not a file")
        return node

    def _check_new_name(self, command: str, name: str) -> None:
        self._checked_name(command, name)
        if name in self._here.contents:
            raise ToolError(f"{command}: {_show(name)} already exists in the current directory")

    def _check_budget(self, command: str, add_entries: int, add_chars: int) -> None:
        entries, chars, _ = _measure(self.state.root[self._top_name])
        if entries - 1 + add_entries > MAX_ENTRIES:
            raise ToolError(f"{command}: the filesystem is full (at most {MAX_ENTRIES} entries)")
        if chars + add_chars > MAX_TOTAL_CHARS:
            raise ToolError(
                f"{command}: not enough space (the filesystem holds at most "
                f"{MAX_TOTAL_CHARS} characters of content)"
            )

    def _check_depth(self, command: str, node: FileNode | DirNode, depth: int) -> None:
        """``node`` is about to sit ``depth`` levels below the top directory."""
        if depth + _measure(node)[2] - 1 > MAX_DEPTH:
            raise ToolError(f"{command}: directories can nest at most {MAX_DEPTH} levels deep")

    def _into_directory(
        self, command: str, source: str, destination: str
    ) -> tuple[DirNode, str, str] | None:
        """Where ``source`` goes: (directory, new name, shown target), or None for a rename."""
        target = self._here.contents.get(destination)
        if target is None:
            return None
        if isinstance(target, FileNode):
            raise ToolError(
                f"{command}: {_show(destination)} is an existing file; remove it first or "
                "choose another name"
            )
        if source in target.contents:
            raise ToolError(f"{command}: {_show(destination + '/' + source)} already exists")
        return target, source, f"{destination}/{source}"

    # ----- navigation and listing -----------------------------------------------------
    @tool(ToolKind.READ, _NAV, returns={"current_working_directory": Sem.PATH})
    def pwd(self) -> dict[str, JsonValue]:
        """Show the absolute path of the current directory."""
        return {"current_working_directory": self._path_text(self.state.cwd)}

    @tool(ToolKind.READ, _NAV, returns={"current_directory_content.*": Sem.FILE_NAME})
    def ls(self, a: Annotated[bool, Sem.FLAG] = False) -> dict[str, JsonValue]:
        """List the entries of the current directory.

        Args:
            a: Also list hidden entries (names starting with a dot).
        """
        names = [name for name in self._here.contents if a or not name.startswith(".")]
        return {"current_directory_content": list(names)}

    @tool(ToolKind.WRITE, _NAV, returns={"current_working_directory": Sem.FOLDER_NAME})
    def cd(self, folder: Annotated[str, Sem.FOLDER_NAME]) -> dict[str, JsonValue]:
        """Change the current directory, normally one level at a time ('..' goes up one level).

        Args:
            folder: Name of a subdirectory of the current directory, or '..' for the parent.
        """
        target = self._resolve("cd", folder)
        self.state.cwd = target
        if folder == "..":
            return {}
        return {"current_working_directory": target[-1] if target else self._top_name}

    # ----- creating and writing -------------------------------------------------------
    @tool(ToolKind.WRITE, _WRITE, returns={"": Sem.MESSAGE})
    def mkdir(self, dir_name: Annotated[str, Sem.FOLDER_NAME]) -> None:
        """Create an empty directory inside the current directory.

        Args:
            dir_name: Name of the new directory (a plain name, no path).
        """
        self._check_new_name("mkdir", dir_name)
        self._check_depth("mkdir", DirNode(), len(self.state.cwd) + 1)
        self._check_budget("mkdir", 1, 0)
        self._here.contents[dir_name] = DirNode()

    @tool(ToolKind.WRITE, _WRITE, returns={"": Sem.MESSAGE})
    def touch(self, file_name: Annotated[str, Sem.FILE_NAME]) -> None:
        """Create an empty file in the current directory.

        Args:
            file_name: Name of the new file (a plain name, no path).
        """
        self._check_new_name("touch", file_name)
        self._check_budget("touch", 1, 0)
        self._here.contents[file_name] = FileNode()

    @tool(ToolKind.WRITE, _WRITE, returns={"terminal_output": Sem.FILE_CONTENT})
    def echo(
        self,
        content: Annotated[str, Sem.FILE_CONTENT],
        file_name: Annotated[str | None, Sem.FILE_NAME] = None,
    ) -> dict[str, JsonValue] | None:
        """Print text, or write it to a file of the current directory (replacing its content).

        Args:
            content: The text to print or write.
            file_name: File to write to; created if missing. Leave out to print the text instead.
        """
        if len(content) > MAX_FILE_CHARS:
            raise ToolError(f"echo: the content exceeds {MAX_FILE_CHARS} characters")
        if file_name is None:
            return {"terminal_output": content}
        self._checked_name("echo", file_name)
        existing = self._here.contents.get(file_name)
        if isinstance(existing, DirNode):
            raise ToolError(f"echo: {_show(file_name)} is a directory, not a file")
        if existing is None:
            self._check_budget("echo", 1, len(content))
            self._here.contents[file_name] = FileNode(content=content)
        else:
            self._check_budget("echo", 0, len(content) - len(existing.content))
            existing.content = content
        return None

    # ----- reading files --------------------------------------------------------------
    @tool(ToolKind.READ, _READ, returns={"file_content": Sem.FILE_CONTENT})
    def cat(self, file_name: Annotated[str, Sem.FILE_NAME]) -> dict[str, JsonValue]:
        """Show the whole content of a file in the current directory.

        Args:
            file_name: Name of the file (no path).
        """
        return {"file_content": self._file("cat", file_name).content}

    @tool(ToolKind.READ, _READ, returns={"last_lines": Sem.FILE_CONTENT})
    def tail(
        self, file_name: Annotated[str, Sem.FILE_NAME], lines: Annotated[int, Sem.COUNT] = 10
    ) -> dict[str, JsonValue]:
        """Show the last lines of a file in the current directory.

        Args:
            file_name: Name of the file (no path).
            lines: How many lines to show from the end (default 10).
        """
        if lines < 0:
            raise ToolError("tail: the number of lines cannot be negative")
        content = _lines(self._file("tail", file_name).content)
        return {"last_lines": "\n".join(content[-lines:] if lines else [])}

    @tool(ToolKind.READ, _READ, returns={"matching_lines.*": Sem.LINE})
    def grep(
        self, file_name: Annotated[str, Sem.FILE_NAME], pattern: Annotated[str, Sem.KEYWORD]
    ) -> dict[str, JsonValue]:
        """Find the lines of a file in the current directory that contain some text.

        Args:
            file_name: Name of the file to search (no path).
            pattern: Text to look for (matched literally, case-sensitive).
        """
        content = self._file("grep", file_name).content
        return {"matching_lines": [line for line in _lines(content) if pattern in line]}

    @tool(ToolKind.READ, _READ, returns={"count": Sem.COUNT, "type": Sem.OPTION})
    def wc(
        self,
        file_name: Annotated[str, Sem.FILE_NAME],
        mode: Annotated[Literal["l", "w", "c"], Sem.OPTION] = "l",
    ) -> dict[str, JsonValue]:
        """Count the lines, words or characters of a file in the current directory.

        Args:
            file_name: Name of the file (no path).
            mode: What to count: 'l' lines, 'w' words, 'c' characters.
        """
        content = self._file("wc", file_name).content
        if mode == "l":
            return {"count": len(_lines(content)), "type": "lines"}
        if mode == "w":
            return {"count": len(content.split()), "type": "words"}
        return {"count": len(content), "type": "characters"}

    @tool(ToolKind.READ, _READ, returns={"sorted_content": Sem.FILE_CONTENT})
    def sort(self, file_name: Annotated[str, Sem.FILE_NAME]) -> dict[str, JsonValue]:
        """Show the lines of a file in the current directory in sorted order (file unchanged).

        Args:
            file_name: Name of the file (no path).
        """
        content = self._file("sort", file_name).content
        return {"sorted_content": "\n".join(sorted(_lines(content)))}

    @tool(ToolKind.READ, _READ, returns={"diff_lines": Sem.FILE_CONTENT})
    def diff(
        self,
        file_name1: Annotated[str, Sem.FILE_NAME],
        file_name2: Annotated[str, Sem.FILE_NAME],
    ) -> dict[str, JsonValue]:
        """Compare two files of the current directory line by line.

        Args:
            file_name1: Name of the first file (no path).
            file_name2: Name of the second file (no path).
        """
        first = _lines(self._file("diff", file_name1).content)
        second = _lines(self._file("diff", file_name2).content)
        changed = [f"- {old}\n+ {new}" for old, new in zip(first, second) if old != new]
        return {"diff_lines": "\n".join(changed)}

    # ----- walking the tree -----------------------------------------------------------
    @tool(ToolKind.READ, _WALK, returns={"matches.*": Sem.PATH})
    def find(
        self,
        path: Annotated[str, Sem.PATH] = ".",
        name: Annotated[str | None, Sem.FILE_NAME] = None,
    ) -> dict[str, JsonValue]:
        """Search a directory and all its subdirectories for entries whose name contains a text.

        Args:
            path: Directory to search from, relative to the current one (default '.').
            name: Text the entry name must contain; leave out to list every entry.
        """
        parts = self._resolve("find", path)
        start = self._dir_at(parts)
        # shown as given when relative ("." -> "./x"), normalised when absolute
        prefix = self._path_text(parts) if path.startswith("/") else path.rstrip("/")
        return {"matches": self._preorder(prefix, start, name)}

    def _preorder(self, base: str, node: DirNode, name: str | None) -> list[JsonValue]:
        found: list[JsonValue] = []
        for entry, child in node.contents.items():
            shown = f"{base}/{entry}"
            if name is None or name in entry:
                found.append(shown)
            if isinstance(child, DirNode):
                found.extend(self._preorder(shown, child, name))
        return found

    @tool(ToolKind.READ, _WALK, returns={"disk_usage": Sem.SIZE_BYTES})
    def du(self, human_readable: Annotated[bool, Sem.FLAG] = False) -> dict[str, JsonValue]:
        """Add up the size of all files in the current directory and its subdirectories.

        Args:
            human_readable: Give the size with a unit (B, KB, MB, ...) instead of in bytes.
        """
        size = self._bytes(self._here)
        if not human_readable:
            return {"disk_usage": f"{size} bytes"}
        value, unit = float(size), _SIZE_UNITS[0]
        for unit in _SIZE_UNITS:
            if value < 1024 or unit == _SIZE_UNITS[-1]:
                break
            value /= 1024
        return {"disk_usage": f"{value:.2f} {unit}"}

    def _bytes(self, node: FileNode | DirNode) -> int:
        if isinstance(node, FileNode):
            return len(node.content.encode("utf-8", "surrogatepass"))
        return sum(self._bytes(child) for child in node.contents.values())

    # ----- moving, copying, removing --------------------------------------------------
    @tool(ToolKind.WRITE, _COPY, returns={"result": Sem.MESSAGE})
    def mv(
        self,
        source: Annotated[str, Sem.FILE_NAME],
        destination: Annotated[str, Sem.FILE_NAME],
    ) -> dict[str, JsonValue]:
        """Rename an entry of the current directory, or move it into a subdirectory of it.

        Args:
            source: Name of the file or directory to move.
            destination: New name, or the name of an existing subdirectory to move it into.
        """
        node = self._entry("mv", source)
        self._checked_name("mv", destination)
        if destination == source:
            raise ToolError(f"mv: {_show(source)} and {_show(destination)} are the same entry")
        into = self._into_directory("mv", source, destination)
        if into is None:
            del self._here.contents[source]
            self._here.contents[destination] = node
            return {"result": f"'{source}' moved to '{destination}'"}
        target, new_name, shown = into
        self._check_depth("mv", node, len(self.state.cwd) + 2)
        del self._here.contents[source]
        target.contents[new_name] = node
        return {"result": f"'{source}' moved to '{shown}'"}

    @tool(ToolKind.WRITE, _COPY, returns={"result": Sem.MESSAGE})
    def cp(
        self,
        source: Annotated[str, Sem.FILE_NAME],
        destination: Annotated[str, Sem.FILE_NAME],
    ) -> dict[str, JsonValue]:
        """Copy an entry of the current directory under a new name, or into a subdirectory.

        Args:
            source: Name of the file or directory to copy.
            destination: Name of the copy, or of an existing subdirectory to copy it into.
        """
        node = self._entry("cp", source)
        self._checked_name("cp", destination)
        if destination == source:
            raise ToolError(f"cp: {_show(source)} and {_show(destination)} are the same entry")
        into = self._into_directory("cp", source, destination)
        target, new_name, shown = into or (self._here, destination, destination)
        self._check_depth("cp", node, len(self.state.cwd) + (2 if into else 1))
        entries, chars, _ = _measure(node)
        self._check_budget("cp", entries, chars)
        target.contents[new_name] = node.model_copy(deep=True)
        return {"result": f"'{source}' copied to '{shown}'"}

    @tool(ToolKind.WRITE, _WRITE, returns={"result": Sem.MESSAGE})
    def rm(self, file_name: Annotated[str, Sem.FILE_NAME]) -> dict[str, JsonValue]:
        """Delete a file or a whole directory from the current directory.

        Args:
            file_name: Name of the file or directory to delete.
        """
        self._entry("rm", file_name)
        del self._here.contents[file_name]
        return {"result": f"'{file_name}' removed"}

    @tool(ToolKind.WRITE, _WRITE, returns={"result": Sem.MESSAGE})
    def rmdir(self, dir_name: Annotated[str, Sem.FOLDER_NAME]) -> dict[str, JsonValue]:
        """Delete an empty directory from the current directory.

        Args:
            dir_name: Name of the directory to delete.
        """
        node = self._entry("rmdir", dir_name)
        if not isinstance(node, DirNode):
            raise ToolError(f"rmdir: {_show(dir_name)} is a file, not a directory")
        if node.contents:
            raise ToolError(f"rmdir: {_show(dir_name)} is not empty; remove its entries first")
        del self._here.contents[dir_name]
        return {"result": f"'{dir_name}' removed"}
