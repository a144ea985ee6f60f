"""The in-memory filesystem: tools, hostile inputs, limits, BFCL view, conformance."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from envcheck import refusal

import pipeline.envs.filesystem as fs_module
from pipeline.bfcl.conformance import check_conformance
from pipeline.envs import ToolError
from pipeline.envs.filesystem import MAX_DEPTH, MAX_ENTRIES, MAX_FILE_CHARS, MAX_NAME, Filesystem


def f(text: str) -> dict[str, Any]:
    return {"type": "file", "content": text}


def d(**entries: Any) -> dict[str, Any]:
    return {"type": "directory", "contents": entries}


def make(**entries: Any) -> Filesystem:
    """A tree under /ws with the given top entries; starts at /ws."""
    env = Filesystem.from_state({"root": {"ws": d(**entries)}})
    assert isinstance(env, Filesystem)
    return env


@pytest.fixture
def env() -> Filesystem:
    return make(
        docs=d(**{"a.txt": f("pear\napple\nfig"), "b.txt": f("pear\nbanana\nfig\nkiwi")}),
        empty=d(),
        **{"notes.md": f("hello world"), ".hidden": f("secret")},
    )


def call(env: Filesystem, tool: str, **arguments: Any) -> Any:
    return env.invoke(tool, arguments)


# ----- navigation ----------------------------------------------------------------------


def test_cd_pwd_and_parent(env: Filesystem) -> None:
    assert call(env, "pwd") == {"current_working_directory": "/ws"}
    assert call(env, "cd", folder="docs") == {"current_working_directory": "docs"}
    assert call(env, "pwd") == {"current_working_directory": "/ws/docs"}
    assert env.bfcl_state()["__cwd__"] == "/ws/docs"
    assert call(env, "cd", folder="..") == {}
    assert env.state.cwd == []


def test_cd_walks_multi_level_and_absolute_paths_inside_the_tree() -> None:
    env = make(a=d(b=d(c=d())))
    assert call(env, "cd", folder="a/b") == {"current_working_directory": "b"}
    assert call(env, "cd", folder="../b/./c") == {"current_working_directory": "c"}
    assert call(env, "cd", folder="/ws/a") == {"current_working_directory": "a"}
    assert call(env, "cd", folder="/") == {"current_working_directory": "ws"}
    assert env.state.cwd == []


def test_ls_hides_dot_entries_unless_asked(env: Filesystem) -> None:
    assert call(env, "ls") == {"current_directory_content": ["docs", "empty", "notes.md"]}
    assert call(env, "ls", a=True)["current_directory_content"][-1] == ".hidden"


# ----- creating and writing ------------------------------------------------------------


def test_mkdir_touch_echo(env: Filesystem) -> None:
    assert call(env, "mkdir", dir_name="new") is None
    assert call(env, "touch", file_name="t.txt") is None
    assert call(env, "echo", content="one two", file_name="t.txt") is None
    assert call(env, "cat", file_name="t.txt") == {"file_content": "one two"}
    assert call(env, "echo", content="fresh", file_name="created.txt") is None
    assert call(env, "cat", file_name="created.txt") == {"file_content": "fresh"}
    assert call(env, "echo", content="just print") == {"terminal_output": "just print"}
    assert env.snapshot()["root"]["ws"]["contents"]["new"] == d()


# ----- reading -------------------------------------------------------------------------


def test_read_tools(env: Filesystem) -> None:
    call(env, "cd", folder="docs")
    assert call(env, "grep", file_name="b.txt", pattern="an") == {"matching_lines": ["banana"]}
    assert call(env, "wc", file_name="b.txt") == {"count": 4, "type": "lines"}
    assert call(env, "wc", file_name="b.txt", mode="w") == {"count": 4, "type": "words"}
    assert call(env, "wc", file_name="b.txt", mode="c") == {"count": 20, "type": "characters"}
    assert call(env, "sort", file_name="a.txt") == {"sorted_content": "apple\nfig\npear"}
    assert call(env, "tail", file_name="b.txt", lines=2) == {"last_lines": "fig\nkiwi"}
    assert call(env, "tail", file_name="b.txt") == {"last_lines": "pear\nbanana\nfig\nkiwi"}
    assert call(env, "diff", file_name1="a.txt", file_name2="b.txt") == {
        "diff_lines": "- apple\n+ banana"
    }
    # like upstream, lines are paired up; lines beyond the shorter file are not reported
    call(env, "touch", file_name="blank.txt")
    assert call(env, "diff", file_name1="blank.txt", file_name2="a.txt") == {"diff_lines": ""}


def test_find_preorder_with_prefixes() -> None:
    env = make(
        data=d(**{"report_a.txt": f("x"), "sub": d(**{"report_b.txt": f("y")}), "z": f("")}),
        **{"report.md": f("")},
    )
    assert call(env, "find", name="report") == {
        "matches": ["./data/report_a.txt", "./data/sub/report_b.txt", "./report.md"]
    }
    assert call(env, "find", path="data") == {
        "matches": ["data/report_a.txt", "data/sub", "data/sub/report_b.txt", "data/z"]
    }
    assert call(env, "find", path="/ws/data/sub") == {"matches": ["/ws/data/sub/report_b.txt"]}


def test_du_counts_bytes_of_the_current_subtree() -> None:
    env = make(a=d(**{"x": f("é" * 1000), "in": d(**{"y": f("z" * 48)})}), top=f("ignored"))
    call(env, "cd", folder="a")
    assert call(env, "du") == {"disk_usage": "2048 bytes"}
    assert call(env, "du", human_readable=True) == {"disk_usage": "2.00 KB"}


# ----- moving, copying, removing -------------------------------------------------------


def test_mv_rename_and_into_directory(env: Filesystem) -> None:
    assert call(env, "mv", source="notes.md", destination="readme.md") == {
        "result": "'notes.md' moved to 'readme.md'"
    }
    assert call(env, "mv", source="readme.md", destination="docs") == {
        "result": "'readme.md' moved to 'docs/readme.md'"
    }
    contents = env.snapshot()["root"]["ws"]["contents"]
    assert "readme.md" in contents["docs"]["contents"] and "notes.md" not in contents


def test_cp_makes_an_independent_deep_copy(env: Filesystem) -> None:
    assert call(env, "cp", source="docs", destination="empty") == {
        "result": "'docs' copied to 'empty/docs'"
    }
    assert call(env, "cp", source="notes.md", destination="copy.md") == {
        "result": "'notes.md' copied to 'copy.md'"
    }
    call(env, "cd", folder="docs")
    call(env, "echo", content="changed", file_name="a.txt")
    copied = env.snapshot()["root"]["ws"]["contents"]["empty"]["contents"]["docs"]
    assert copied["contents"]["a.txt"]["content"] == "pear\napple\nfig"


def test_rm_and_rmdir(env: Filesystem) -> None:
    assert call(env, "rm", file_name="docs") == {"result": "'docs' removed"}
    assert call(env, "rmdir", dir_name="empty") == {"result": "'empty' removed"}
    assert call(env, "ls", a=True) == {"current_directory_content": ["notes.md", ".hidden"]}


# ----- misuse: ToolError with a clear message and no state change ----------------------

MISUSE = [
    ("cd", {"folder": "nowhere"}, "no directory 'nowhere'"),
    ("cd", {"folder": "notes.md"}, "is a file"),
    ("cat", {"file_name": "docs"}, "is a directory"),
    ("cat", {"file_name": "missing.txt"}, "no file or directory 'missing.txt'"),
    ("mkdir", {"dir_name": "docs"}, "already exists"),
    ("touch", {"file_name": "notes.md"}, "already exists"),
    ("echo", {"content": "x", "file_name": "docs"}, "is a directory"),
    ("rmdir", {"dir_name": "docs"}, "not empty"),
    ("rmdir", {"dir_name": "notes.md"}, "is a file"),
    ("mv", {"source": "notes.md", "destination": "notes.md"}, "same entry"),
    ("mv", {"source": "docs", "destination": "notes.md"}, "existing file"),
    ("cp", {"source": "ghost", "destination": "docs"}, "no file or directory 'ghost'"),
    ("tail", {"file_name": "notes.md", "lines": -1}, "cannot be negative"),
    ("wc", {"file_name": "notes.md", "mode": "x"}, "invalid arguments for wc"),
    ("find", {"path": "notes.md"}, "is a file"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), MISUSE)
def test_misuse_raises_and_leaves_state_unchanged(
    env: Filesystem, tool: str, arguments: dict[str, Any], message: str
) -> None:
    refusal(env, tool, arguments, message)


def test_mv_into_directory_refuses_to_overwrite(env: Filesystem) -> None:
    call(env, "cp", source="notes.md", destination="docs")
    refusal(env, "mv", {"source": "notes.md", "destination": "docs"}, "already exists")


HUGE = "x" * 10_000_000

HOSTILE = [
    ("cd", {"folder": ".."}, "cannot go above the top directory /ws"),
    ("cd", {"folder": "../../../../etc"}, "cannot go above the top directory"),
    ("cd", {"folder": "/etc/passwd"}, "absolute paths start with /ws"),
    ("cd", {"folder": "/"}, None),
    ("cd", {"folder": ""}, "path is empty"),
    ("cd", {"folder": "docs\x00/../.."}, "NUL"),
    ("cd", {"folder": HUGE}, "at most 4096 characters"),
    ("cat", {"file_name": "/etc/passwd"}, "is a path"),
    ("cat", {"file_name": "../../etc/shadow"}, "is a path"),
    ("cat", {"file_name": ".."}, "not an entry name"),
    ("touch", {"file_name": "evil\x00name"}, "NUL"),
    ("touch", {"file_name": "a/b"}, "is a path"),
    ("touch", {"file_name": HUGE}, f"at most {MAX_NAME} characters"),
    ("mkdir", {"dir_name": HUGE}, f"at most {MAX_NAME} characters"),
    ("mkdir", {"dir_name": "/tmp/pwned"}, "is a path"),
    ("mkdir", {"dir_name": "."}, "not an entry name"),
    ("echo", {"content": "x", "file_name": "/etc/passwd"}, "is a path"),
    ("echo", {"content": HUGE, "file_name": "big.txt"}, f"exceeds {MAX_FILE_CHARS}"),
    ("echo", {"content": HUGE}, f"exceeds {MAX_FILE_CHARS}"),
    ("rm", {"file_name": "/"}, "is a path"),
    ("rm", {"file_name": "."}, "not an entry name"),
    ("rmdir", {"dir_name": ".."}, "not an entry name"),
    ("mv", {"source": "notes.md", "destination": "../outside.md"}, "is a path"),
    ("mv", {"source": "notes.md", "destination": "/etc/cron.d/job"}, "is a path"),
    ("cp", {"source": "/etc/passwd", "destination": "stolen"}, "is a path"),
    ("cp", {"source": "notes.md", "destination": HUGE}, f"at most {MAX_NAME} characters"),
    ("find", {"path": "/etc"}, "absolute paths start with /ws"),
    ("find", {"path": "../.."}, "cannot go above"),
    ("grep", {"file_name": "\x00", "pattern": "x"}, "NUL"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), HOSTILE)
def test_hostile_inputs_stay_in_memory(
    env: Filesystem, tool: str, arguments: dict[str, Any], message: str | None
) -> None:
    if message is None:  # harmless: stays inside the tree
        env.invoke(tool, arguments)
        assert env.state.cwd == []
        return
    assert len(refusal(env, tool, arguments, message)) < 300, "hostile values are not echoed"


def test_module_never_touches_the_host_filesystem() -> None:
    tree = ast.parse(Path(fs_module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert imported == {
        "__future__",
        "collections.abc",
        "typing",
        "pydantic",
        "pipeline.envs.base",
        "pipeline.envs.long_context",  # data only (upstream's long-context additions)
        "pipeline.semantics",
    }
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"open", "exec", "eval", "__import__", "compile"}


def test_copy_bomb_hits_the_entry_limit_without_changing_state() -> None:
    env = make(bomb=d(**{f"f{i}": f("") for i in range(600)}))
    with pytest.raises(ToolError, match="full"):
        for round_number in range(MAX_ENTRIES):
            call(env, "cp", source="bomb", destination=f"bomb{round_number}")
    entries = len(json.dumps(env.snapshot()).split('"type"')) - 1
    assert entries <= MAX_ENTRIES + 1
    before = env.snapshot()
    with pytest.raises(ToolError):
        call(env, "cp", source="bomb", destination="one_more")
    assert env.snapshot() == before


def test_content_budget_limits_total_size() -> None:
    env = make()
    chunk = "y" * MAX_FILE_CHARS
    with pytest.raises(ToolError, match="not enough space"):
        for number in range(20):
            call(env, "echo", content=chunk, file_name=f"part{number}")
    assert len(env.state.root["ws"].contents) == 8


def test_nesting_depth_is_bounded() -> None:
    env = make()
    for level in range(MAX_DEPTH):
        call(env, "mkdir", dir_name=f"l{level}")
        call(env, "cd", folder=f"l{level}")
    with pytest.raises(ToolError, match="nest at most"):
        call(env, "mkdir", dir_name="too_deep")
    assert len(env.state.cwd) == MAX_DEPTH


# ----- states: construction, BFCL view, round trip ------------------------------------


def test_bfcl_config_keeps_the_first_top_directory_and_emits_cwd() -> None:
    env = Filesystem.from_bfcl_config(
        {"root": {"project": d(**{"deploy.py": f("pass")}), "backup": d()}}
    )
    state = env.bfcl_state()
    assert state == {
        "long_context": False,
        "root": {"project": d(**{"deploy.py": f("pass")})},
        "__cwd__": "/project",
    }
    assert "cwd" not in state


@pytest.mark.parametrize(
    "state",
    [
        {"root": {}},
        {"root": {"a": d(), "b": d()}},
        {"root": {"a": d(**{"x/y": f("")})}},
        {"root": {"a": d(**{"..": d()})}},
        {"root": {"a": d(b=f(""))}, "cwd": ["b"]},
        {"root": {"a": d()}, "cwd": ["missing"]},
        {"root": {"a": {"type": "link", "target": "/etc"}}},
    ],
)
def test_invalid_states_are_refused(state: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Filesystem.from_state(state)


def test_snapshot_midway_resumes_identically(env: Filesystem) -> None:
    call(env, "cd", folder="docs")
    call(env, "mkdir", dir_name="out")
    resumed = Filesystem.from_state(env.snapshot())
    for target in (env, resumed):
        target.invoke("cp", {"source": "a.txt", "destination": "out"})
        target.invoke("cd", {"folder": "out"})
        target.invoke("echo", {"content": "done", "file_name": "log"})
    assert resumed.snapshot() == env.snapshot()
    assert resumed.bfcl_state()["__cwd__"] == "/ws/docs/out"


# ----- schema ---------------------------------------------------------------------------


def test_tool_set() -> None:
    specs = Filesystem.tool_specs()
    assert len(specs) == 18
    assert specs["wc"].parameters["properties"]["mode"]["enum"] == ["l", "w", "c"]
    assert specs["pwd"].kind.value == "read" and specs["rm"].kind.value == "write"


def test_conformance_with_upstream(bfcl_dir: Path) -> None:
    report = check_conformance(bfcl_dir, only_env="filesystem")
    result = report.per_class["GorillaFileSystem"]
    assert (result.matched, result.total) == (38, 38), report.summary()
    assert not [line for line in report.call_errors if "filesystem" in line]


def test_the_default_tree_is_an_empty_workspace() -> None:
    assert Filesystem.from_state({}).snapshot()["root"] == {"workspace": d()}
