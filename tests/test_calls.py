"""Parsing call strings with ``ast``: good calls, and a table of malformed or hostile ones."""

from __future__ import annotations

import pytest

from pipeline.calls import CallParseError, format_call, parse_call
from pipeline.envs import ENVIRONMENTS, ToolError
from pipeline.replay import build_envs


def test_parses_keywords_positionals_and_literals() -> None:
    parsed = parse_call("post(content='hi', tags=['#a', '#b'], n=-3, x=2.5, ok=True, none=None)")
    assert parsed.name == "post"
    assert parsed.kwargs == {
        "content": "hi",
        "tags": ["#a", "#b"],
        "n": -3,
        "x": 2.5,
        "ok": True,
        "none": None,
    }
    assert parse_call("sort('final_report.pdf')").args == ["final_report.pdf"]
    assert parse_call("f(d={'k': (1, 2)})").kwargs == {"d": {"k": [1, 2]}}


def test_positionals_bind_to_parameter_names() -> None:
    bound = parse_call("add(1, b=2)").bind(("a", "b"))
    assert bound == {"a": 1, "b": 2}
    with pytest.raises(CallParseError, match="twice"):
        parse_call("add(1, a=2)").bind(("a", "b"))
    with pytest.raises(CallParseError, match="at most 2 positional"):
        parse_call("add(1, 2, 3)").bind(("a", "b"))


def test_format_call_round_trips() -> None:
    arguments = {"content": 'it\'s "quoted"', "tags": ["#x"], "n": 3, "d": {"a": None}}
    assert parse_call(format_call("post", arguments)).kwargs == arguments


HOSTILE_CALLS = [
    ("", "empty"),
    ("   ", "empty"),
    ("cd", "expected a function call"),
    ("cd(", "not valid call syntax"),
    ("cd(folder='a'", "not valid call syntax"),
    ("cd(folder='a'); rm(file_name='b')", "not valid call syntax"),
    ("cd(folder='a')\nrm(file_name='b')", "not valid call syntax"),
    ("os.system('rm -rf /')", "plain name"),
    ("__import__('os').system('ls')", "plain name"),
    ("__import__('os')", "dunder"),
    ("cd(folder=__import__('os'))", "only literal arguments"),
    ("cd(folder=open('/etc/passwd').read())", "only literal arguments"),
    ("cd(folder=lambda: 1)", "only literal arguments"),
    ("cd(folder=[x for x in range(10)])", "only literal arguments"),
    ("cd(folder=x)", "only literal arguments"),
    ("cd(folder='a' + 'b')", "only literal arguments"),
    ("add(a=10**100000, b=1)", "only literal arguments"),
    ("add(a=" + "9" * 200 + ", b=1)", "longer than"),
    ("cd(*['a'])", "unpacking"),
    ("cd(**{'folder': 'a'})", "unpacking"),
    ("cd(folder={**{'a': 1}})", "unpacking"),
    ("cd(folder=f'{1}')", "only literal arguments"),
    ("cd(folder=b'bytes')", "unsupported constant"),
    ("cd(folder=...)", "unsupported constant"),
    ("cd(folder=1j)", "unsupported constant"),
    ("cd(folder='a', folder='b')", "given twice"),
    ("cd(folder=" + "[" * 40 + "]" * 40 + ")", "nested deeper"),
    ("cd(folder=" + "[" * 300 + "]" * 300 + ")", "not valid call syntax"),
    ("cd(folder='" + "a" * 150_000 + "')", "string literal longer"),
    ("x" * 300_000, "longer than"),
    ("cd(folder='a\x00b')", "NUL"),
    ("(lambda: 1)()", "plain name"),
    ("cd(folder='a')(1)", "plain name"),
    ("cd(folder={[1]: 2})", "dict keys"),
    ("cd(folder={None: 2})", "dict keys"),
    ("1 + 1", "expected a function call"),
    ("yield cd()", "not valid call syntax"),
]


@pytest.mark.parametrize(("source", "message"), HOSTILE_CALLS, ids=range(len(HOSTILE_CALLS)))
def test_malformed_or_hostile_calls_get_a_clear_parse_error(source: str, message: str) -> None:
    with pytest.raises(CallParseError, match=message):
        parse_call(source)


def test_non_string_input_is_a_parse_error() -> None:
    with pytest.raises(CallParseError, match="must be a string"):
        parse_call(123)  # type: ignore[arg-type]


BAD_ARGUMENTS = [
    ("maths", "add(a='1', b=2)", "a: Input should be a valid number"),
    ("maths", "add(a=True, b=2)", "a: Input should be a valid number"),
    ("maths", "add(a=1)", "b: Field required"),
    ("maths", "add(a=1, b=2, c=3)", "c: Extra inputs are not permitted"),
    ("maths", "mean(numbers='1,2,3')", "numbers: Input should be a valid list"),
    ("maths", "mean(numbers=[1, 'two'])", "numbers.1: Input should be a valid number"),
    ("maths", "mean(numbers=[])", "empty"),
    ("maths", "divide(a=1, b=0)", "divide by zero"),
    ("maths", "logarithm(value=-1, base=10, precision=2)", "positive value"),
    ("maths", "logarithm(value=8, base=1, precision=2)", "base other than 1"),
    ("maths", "square_root(number=-4, precision=2)", "negative"),
    ("maths", "power(base=10, exponent=100000)", "exponent too large"),
    ("maths", "power(base=1e308, exponent=2)", "cannot compute|finite"),
    ("maths", "si_unit_conversion(value=1, unit_in='kg', unit_out='m')", "cannot convert mass"),
    ("maths", "imperial_si_conversion(value=1, unit_in='parsec', unit_out='km')", "unknown unit"),
    ("maths", "round_number(number=1.5, decimal_places=1000)", "between"),
    ("maths", "no_such_tool(a=1)", "has no tool"),
    ("maths", "__class__(a=1)", "dunder"),
]


@pytest.mark.parametrize(("env", "source", "message"), BAD_ARGUMENTS, ids=range(len(BAD_ARGUMENTS)))
def test_bad_arguments_end_in_tool_error(env: str, source: str, message: str) -> None:
    envs = build_envs([env], {})
    before = envs[env].snapshot()
    with pytest.raises((ToolError, CallParseError), match=message):
        parsed = parse_call(source)
        spec = ENVIRONMENTS[env].tool_specs().get(parsed.name)
        arguments = parsed.bind(spec.param_names) if spec else parsed.kwargs
        envs[env].invoke(parsed.name, arguments)
    assert envs[env].snapshot() == before
