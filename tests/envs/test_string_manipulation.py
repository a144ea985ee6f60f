"""String manipulation: text tools, bounded regular expressions, named buffers."""

from __future__ import annotations

from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs.string_manipulation import StringManipulation
from pipeline.seeds import load_seeds


def env(**buffers: str) -> StringManipulation:
    built = StringManipulation.from_state({"buffers": buffers})
    assert isinstance(built, StringManipulation)
    return built


def call(tool: str, state: StringManipulation | None = None, **arguments: Any) -> Any:
    return (state or env()).invoke(tool, arguments)


def refused(tool: str, state: StringManipulation | None = None, **arguments: Any) -> str:
    """The message of a call that must be refused and leave the state as it was (how fast the
    hostile ones end is measured by bench/hostile_inputs.py)."""
    return refusal(state or env(), tool, arguments)


# ----- case, split, join -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("upper", "PARSEHTTPRESPONSE NOW, NAÏVE ÜBER-COOL"),
        ("lower", "parsehttpresponse now, naïve über-cool"),
        ("title", "Parsehttpresponse Now, Naïve Über-cool"),
        ("capitalize", "Parsehttpresponse now, naïve über-cool"),
        ("swapcase", "PARSEhttprESPONSE NOW, NAÏVE üBER-COOL"),
        ("snake", "parse_http_response_now_naïve_über_cool"),
        ("kebab", "parse-http-response-now-naïve-über-cool"),
        ("camel", "parseHttpResponseNowNaïveÜberCool"),
        ("pascal", "ParseHttpResponseNowNaïveÜberCool"),
    ],
)
def test_change_case(mode: str, expected: str) -> None:
    text = "parseHTTPResponse now, naïve Über-cool"
    assert call("change_case", text=text, mode=mode) == {"result": expected}


def test_title_case_keeps_apostrophes_and_spacing() -> None:
    assert call("change_case", text="it's  a test", mode="title") == {"result": "It's  A Test"}
    assert call("change_case", text="", mode="camel") == {"result": ""}


def test_split_and_join_chain() -> None:
    split = call("split_text", text="red;green;blue", separator=";")
    assert split == {"parts": ["red", "green", "blue"], "count": 3}
    joined = call("join_parts", parts=split["parts"], separator=" | ")
    assert joined == {"result": "red | green | blue"}
    assert call("split_text", text="  a b\tc \n") == {"parts": ["a", "b", "c"], "count": 3}
    assert call("split_text", text="a,b,c,d", separator=",", max_parts=2) == {
        "parts": ["a", "b,c,d"],
        "count": 2,
    }
    assert call("join_parts", parts=["x", "y"], separator="") == {"result": "xy"}


def test_split_misuse() -> None:
    assert "empty" in refused("split_text", text="abc", separator="")
    assert "max_parts" in refused("split_text", text="abc", max_parts=0)
    assert "parts" in refused("split_text", text="," * 20_000, separator=",")


# ----- replace, search ---------------------------------------------------------------------


def test_replace_text() -> None:
    assert call("replace_text", text="a-b-c", old="-", new="+") == {
        "result": "a+b+c",
        "replacements": 2,
    }
    assert call("replace_text", text="a-b-c", old="-", new="", count=1) == {
        "result": "ab-c",
        "replacements": 1,
    }
    assert call("replace_text", text="abc", old="z", new="y") == {
        "result": "abc",
        "replacements": 0,
    }
    assert "empty" in refused("replace_text", text="abc", old="", new="x")
    assert "count" in refused("replace_text", text="abc", old="a", new="x", count=0)


def test_regex_find_lists_matches_and_groups() -> None:
    found = call("regex_find", text="Call 555-1234 or 555-9876", pattern=r"(\d{3})-(\d{4})")
    assert found == {
        "matches": ["555-1234", "555-9876"],
        "count": 2,
        "groups": [["555", "1234"], ["555", "9876"]],
    }
    assert call("regex_find", text="Cat cat CAT", pattern="cat", ignore_case=True) == {
        "matches": ["Cat", "cat", "CAT"],
        "count": 3,
    }
    limited = call("regex_find", text="a1 b2 c3", pattern=r"\w\d", max_matches=2)
    assert limited == {"matches": ["a1", "b2"], "count": 3}
    assert call("regex_find", text="abc", pattern=r"x(y)?") == {
        "matches": [],
        "count": 0,
        "groups": [],
    }
    assert call("regex_find", text="ab", pattern=r"a(x)?")["groups"] == [[None]]


def test_regex_replace() -> None:
    assert call(
        "regex_replace",
        text="due 2024-04-14",
        pattern=r"(\d{4})-(\d{2})-(\d{2})",
        replacement=r"\3/\2/\1",
    ) == {"result": "due 14/04/2024", "replacements": 1}
    assert call(
        "regex_replace", text="A a A", pattern="a", replacement="b", count=2, ignore_case=True
    ) == {"result": "b b A", "replacements": 2}
    assert "no such group" in refused("regex_replace", text="abc", pattern="a", replacement=r"\2")
    assert "invalid regular expression" in refused("regex_find", text="abc", pattern="(")
    assert "empty" in refused("regex_find", text="abc", pattern="")
    assert "max_matches" in refused("regex_find", text="abc", pattern="a", max_matches=0)


def test_find_substring_and_slice_chain() -> None:
    text = "Parcel ID-7731 left; ID-8812 waits"
    first = call("find_substring", text=text, substring="ID-")
    assert first == {"found": True, "index": 7}
    assert call("slice_text", text=text, start=first["index"], end=14) == {"result": "ID-7731"}
    assert call("find_substring", text=text, substring="ID-", occurrence=2)["index"] == 21
    assert call("find_substring", text=text, substring="ID-", occurrence=-1)["index"] == 21
    assert call("find_substring", text=text, substring="ID-", occurrence=-2)["index"] == 7
    assert call("find_substring", text=text, substring="ID-", occurrence=3) == {
        "found": False,
        "index": None,
    }
    assert call("find_substring", text="aaa", substring="aa", occurrence=2)["index"] == 1
    assert call("slice_text", text="hello", start=-3) == {"result": "llo"}
    assert "occurrence" in refused("find_substring", text="a", substring="a", occurrence=0)
    assert "empty" in refused("find_substring", text="a", substring="")


# ----- shaping and counting ----------------------------------------------------------------


def test_pad_trim_reverse_count() -> None:
    assert call("pad_text", text="42", width=5, side="left", fill_char="0") == {"result": "00042"}
    assert call("pad_text", text="ab", width=6, side="both", fill_char="*") == {"result": "**ab**"}
    assert call("pad_text", text="ab", width=4) == {"result": "ab  "}
    assert call("pad_text", text="long", width=2) == {"result": "long"}
    assert call("trim_text", text="  x  ") == {"result": "x"}
    assert call("trim_text", text="--x--", side="right", characters="-") == {"result": "--x"}
    assert call("reverse_text", text="abc") == {"result": "cba"}
    assert call("reverse_text", text="one  two three", unit="words") == {"result": "three two one"}
    text = "one two\nthree two"
    assert call("count_text", text=text, unit="characters") == {"count": 17}
    assert call("count_text", text=text, unit="words") == {"count": 4}
    assert call("count_text", text=text, unit="lines") == {"count": 2}
    assert call("count_text", text=text, unit="occurrences", substring="two") == {"count": 2}
    assert "one character" in refused("pad_text", text="a", width=3, fill_char="ab")
    assert "width" in refused("pad_text", text="a", width=10**9)
    assert "substring" in refused("count_text", text="a", unit="occurrences")
    assert "only used" in refused("count_text", text="a", unit="words", substring="a")
    assert "characters is empty" in refused("trim_text", text="a", characters="")


# ----- buffers: state, writes and dependencies ----------------------------------------------


def test_buffer_lifecycle() -> None:
    state = env(log="started")
    assert call("append_to_buffer", state, name="log", text="step 2", separator=" | ") == {
        "length": 16
    }
    assert call("save_buffer", state, name="notes", text="Dear NAME") == {"length": 9}
    assert call("replace_in_buffer", state, name="notes", old="NAME", new="Ana") == {
        "replacements": 1,
        "length": 8,
    }
    assert call("read_buffer", state, name="notes") == {"text": "Dear Ana"}
    assert call("list_buffers", state) == {"names": ["log", "notes"]}
    assert call("delete_buffer", state, name="log") == {"deleted": True}
    assert state.snapshot() == {"buffers": {"notes": "Dear Ana"}}


def test_buffer_misuse_leaves_state_unchanged() -> None:
    state = env(notes="hello")
    assert "no buffer named 'missing'" in refused("read_buffer", state, name="missing")
    assert "no buffer" in refused("append_to_buffer", state, name="missing", text="x")
    assert "no buffer" in refused("delete_buffer", state, name="missing")
    assert "does not occur" in refused("replace_in_buffer", state, name="notes", old="z", new="")
    assert "invalid buffer name" in refused("save_buffer", state, name="../etc", text="x")
    assert "invalid buffer name" in refused("save_buffer", state, name="", text="x")
    assert "at most" in refused("save_buffer", state, name="big", text="x" * 200_001)
    full = env(**{f"b{i}": "x" for i in range(50)})
    assert "already 50 buffers" in refused("save_buffer", full, name="one_more", text="x")
    assert call("save_buffer", full, name="b0", text="replaced") == {"length": 8}


def test_initial_buffers_are_checked() -> None:
    with pytest.raises(ValueError, match="at most 50 buffers"):
        StringManipulation.from_state({"buffers": {f"b{i}": "" for i in range(51)}})
    with pytest.raises(ValueError, match="invalid buffer name"):
        StringManipulation.from_state({"buffers": {"bad/name": ""}})


def test_outputs_feed_later_calls() -> None:
    state = env(inbox="Write to ana.silva@example.com or billing@acme.org", contacts="LEE@X.IO")
    text = call("read_buffer", state, name="inbox")["text"]
    found = call("regex_find", state, text=text, pattern=r"[\w.]+@[\w.]+\w")
    upper = call("change_case", state, text=found["matches"][0], mode="upper")
    call("append_to_buffer", state, name="contacts", text=upper["result"], separator="\n")
    assert state.state.buffers["contacts"] == "LEE@X.IO\nANA.SILVA@EXAMPLE.COM"


# ----- hostile input ends in ToolError (bench/hostile_inputs.py times it) -------------------


def test_catastrophic_backtracking_times_out() -> None:
    assert "took too long" in refused("regex_find", text="a" * 99_999 + "b", pattern=r"(a+)+$")
    assert "took too long" in refused("regex_find", text="a" * 5_000 + "b", pattern=r"(a|aa)+$")
    assert "took too long" in refused(
        "regex_replace", text="a" * 5_000 + "b", pattern=r"(a|aa)+$", replacement="x"
    )


def test_patterns_that_would_compile_forever_are_refused() -> None:
    assert "expand too far" in refused(
        "regex_find", text="abc", pattern="(?:(?:(?:a{1000}){1000}){1000})"
    )
    assert "expand too far" in refused("regex_find", text="abc", pattern="(?:(?:a{100}){100}){100}")
    assert "at most 1000" in refused("regex_find", text="abc", pattern="a{5000}")
    assert "at most 1000" in refused("regex_find", text="abc", pattern="a{2,99999999999}")
    assert "too long" in refused("regex_find", text="abc", pattern="a" * 501)
    # ordinary counted repeats, escapes with braces and sets are fine
    assert call("regex_find", text="2024-05-01", pattern=r"\d{4}-\d{2}-\d{2}")["count"] == 1
    assert call("regex_find", text="x{2}", pattern=r"\p{L}[{]\d}")["count"] == 1
    assert call("regex_find", text="ab", pattern=r".{0,100}b.{0,100}")["count"] == 1


def test_huge_inputs_and_outputs_are_refused() -> None:
    huge = "a" * 100_001
    assert "too long" in refused("change_case", text=huge, mode="upper")
    assert "too long" in refused("regex_find", text=huge, pattern="a")
    assert "too long" in refused("replace_text", text="a" * 100_000, old="a", new="bbb")
    assert "too long" in refused(
        "regex_replace", text="a" * 100_000, pattern="a", replacement=r"\g<0>\g<0>\g<0>"
    )
    assert "too long" in refused("join_parts", parts=["x" * 100_000] * 3, separator="")
    assert "at most" in refused("join_parts", parts=["x"] * 10_001, separator="")
    result = call("regex_find", text="ab" * 50_000, pattern="x?")
    assert result["count"] == 100_001 and len(result["matches"]) == 100


# ----- seeds --------------------------------------------------------------------------------


def test_seeds_use_the_regex_and_buffer_tools() -> None:
    seeds = [task for task in load_seeds() if task.category == "string_manipulation"]
    tools = {call.function for task in seeds for call in task.calls}
    assert {"regex_find", "regex_replace", "save_buffer", "append_to_buffer"} <= tools
