"""The ``verbalise`` operator: write a task's question from its calls, by template, no LLM.

Every environment has a Jinja2 module ``prompts/verbalise/<env>.j2`` holding one macro per tool,
named like the tool and taking the tool's parameters. A macro renders a short imperative phrase
for one call ("go into the folder 'documents'") that contains every literal argument verbatim,
so the grounding check passes, and never spells out a tool name. The phrases of a task's calls
are joined into one request ("First, ...; then ...; finally ....").

An argument that a call takes from an earlier output (a declared binding) is not written as its
value: the macro receives a :class:`Ref` instead, which reads as "the user id from the previous
step". The question then asks for the dependency instead of giving the answer away.

Templates can use these helpers besides the usual Jinja2 ones:

- filter ``q``: a string in quotes (single, or double when it holds a single quote), a number
  as written, a list as "a, b and c"; a ``Ref`` as its phrase;
- filter ``v``: the same without quotes (units, symbols, tags, ids);
- filter ``words``: an identifier-like choice in words (``rear_left`` -> "rear left");
- test ``ref``: whether a value is a ``Ref`` (``{% if ticket_id is ref %}``);
- ``_common.j2``: shared macros, imported with ``{% import '_common.j2' as c %}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from jinja2.runtime import Macro

from pipeline.envs import ToolError, resolve_tool
from pipeline.models import Call, Lineage, Task
from pipeline.semantics import Sem, describe

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"

_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth", "twentieth",
)  # fmt: skip

#: output keys whose plain humanised form reads badly
_KEY_NOUNS = {
    "gallon": "number of gallons",
    "liter": "number of liters",
    "zipcode": "zip code",
    "watchlist": "watch list",
}


#: output keys that say nothing about what a value is
_VAGUE_KEYS = frozenset({"result", "results", "value", "values", "output", "data", "content"})


#: invisible marks around a rendered reference, so a phrase can be smoothed where a template
#: put a reference after a noun ("the message the text of ...") and then removed
_REF_START, _REF_END = "\x02", "\x03"
_NOUN_BEFORE_REF = re.compile(rf"\bthe ((?:[a-z]+ )?[a-z]+) {_REF_START}([^{_REF_END}]*){_REF_END}")
_FUNCTION_WORDS = frozenset(
    {"for", "from", "to", "of", "by", "in", "on", "at", "with", "named", "as", "and", "or"}
)


def _smooth_references(text: str) -> str:
    """A template's "the message 'hi'" with a reference in place of the value reads "the
    message the text of ..."; the reference already names the value, so the noun goes."""

    def fix(match: re.Match[str]) -> str:
        if _FUNCTION_WORDS & set(match.group(1).split()):
            return match.group(0)
        return match.group(2)

    return _NOUN_BEFORE_REF.sub(fix, text).replace(_REF_START, "").replace(_REF_END, "")


def ordinal(position: int) -> str:
    """1 -> "first"; past the table, "number 21"."""
    if 1 <= position <= len(_ORDINALS):
        return _ORDINALS[position - 1]
    return f"number {position}"


def humanise(identifier: str) -> str:
    """``matching_lines`` / ``shopLocation`` -> "matching lines" / "shop location"."""
    if identifier in _KEY_NOUNS:
        return _KEY_NOUNS[identifier]
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", identifier).replace("_", " ")
    return " ".join(spaced.lower().split())


def _singular(noun: str) -> str:
    if noun.endswith(" list"):
        return noun[: -len(" list")]
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    if noun.endswith(("ches", "shes", "sses", "xes", "zes")):
        return noun[:-2]  # matches -> match, boxes -> box
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    return noun


def _is_id_key(key: str) -> bool:
    return key == "id" or key.endswith("_id") or (key.endswith("Id") and len(key) > 2)


def _describe(tokens: Sequence[str]) -> str:
    """A path inside an output as a noun phrase: ``matching_lines.0`` -> "the first matching
    line", ``results.0.receiver_id`` -> "the receiver id of the first result"."""
    if not tokens:
        return "the result"
    last = tokens[-1]
    head = tokens[:-1]
    if last.isdigit():
        position = ordinal(int(last) + 1)
        if head and not head[-1].isdigit():
            phrase = f"the {position} {_singular(humanise(head[-1]))}"
            head = head[:-1]
        else:
            phrase = f"the {position} entry"
        return f"{phrase} of {_describe(head)}" if head else phrase
    phrase = f"the {humanise(last)}"
    return f"{phrase} of {_describe(head)}" if head else phrase


class Ref:
    """A value taken from an earlier step's output; ``str()`` is a phrase naming it.

    ``step_index`` is the 1-based position of the producing call, ``argument`` the parameter of
    the consuming call that takes the value. ``path`` (where the value sits in the producer's
    output, e.g. ``matching_lines.0``) and ``consumer_index`` (the 1-based position of the
    consuming call) are optional and only improve the wording: "the first matching line from
    the previous step" instead of "the result of the second step".
    """

    def __init__(
        self,
        step_index: int,
        argument: str,
        *,
        path: str = "",
        consumer_index: int | None = None,
        meaning: str | None = None,
    ) -> None:
        self.step_index = step_index
        self.argument = argument
        self.path = path
        self.consumer_index = consumer_index
        #: what the value is by its semantic type ("zip code"), used when its place in the
        #: output says nothing ("result", a bare list index)
        self.meaning = meaning

    @property
    def _tokens(self) -> list[str]:
        return [token for token in self.path.split(".") if token]

    @property
    def where(self) -> str:
        """Which step: "from the previous step", "from the second step" ("in the previous
        step" after a value *found* there)."""
        preposition = "in" if (self.meaning or "").endswith(" found") else "from"
        if self.consumer_index is not None and self.consumer_index == self.step_index + 1:
            return f"{preposition} the previous step"
        return f"{preposition} the {ordinal(self.step_index)} step"

    @property
    def noun(self) -> str:
        """What the value is, from its place in the output ("the first matching line"); a bare
        ``id`` is named after the argument ("the tweet id"), the whole output is "the result"."""
        tokens = self._tokens
        if tokens == ["id"] and _is_id_key(self.argument):
            return f"the {humanise(self.argument)}"
        if self.meaning and (not tokens or tokens[-1].isdigit() or tokens[-1] in _VAGUE_KEYS):
            if tokens and tokens[-1].isdigit():
                return f"the {ordinal(int(tokens[-1]) + 1)} {self.meaning}"
            return f"the {self.meaning}"
        return _describe(tokens)

    def about(self, entity: str) -> str:
        """The thing the value identifies: for ``ticket_id`` taken from ``id`` of a new ticket,
        ``about("ticket")`` is "the ticket from the previous step"; values that are not ids
        read as ``str(self)``."""
        tokens = self._tokens
        if not tokens or not _is_id_key(tokens[-1]):
            return str(self)
        last, rest = tokens[-1], tokens[:-1]
        if last != "id" and rest:
            # results.0.receiver_id -> "the receiver of the first result"
            owner = humanise(last[:-3] if last.endswith("_id") else last[:-2])
            return f"the {owner} of {_describe(rest)} {self.where}"
        if not rest:
            return f"the {entity} {self.where}"
        if rest[-1].isdigit() and len(rest) == 1:
            return f"the {ordinal(int(rest[0]) + 1)} {entity} {self.where}"
        return f"{_describe(rest)} {self.where}"

    def __str__(self) -> str:
        noun = self.noun
        if noun == "the result":  # "the result of the previous step"
            text = f"{noun} {self.where.replace('from ', 'of ', 1)}"
        else:
            text = f"{noun} {self.where}"
        return text

    def __repr__(self) -> str:
        return (
            f"Ref(step_index={self.step_index}, argument={self.argument!r}, path={self.path!r}, "
            f"consumer_index={self.consumer_index})"
        )


class _MarkedRef(Ref):
    """A reference rendered between invisible marks, so a phrase can be smoothed around it."""

    def __str__(self) -> str:
        return f"{_REF_START}{Ref.__str__(self)}{_REF_END}"


def _marked(ref: Ref) -> Ref:
    return _MarkedRef(
        ref.step_index,
        ref.argument,
        path=ref.path,
        consumer_index=ref.consumer_index,
        meaning=ref.meaning,
    )


# --- value formatting, exposed to templates as filters ----------------------------------------


def format_number(value: int | float) -> str:
    """A number as a reader writes it and the grounding check reads it back: ``1000.0`` ->
    "1000", ``2.5`` -> "2.5", ``1e-05`` -> "0.00001" (never scientific notation)."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer():
        return str(int(value))
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text


def _quote(text: str) -> str:
    return f'"{text}"' if "'" in text and '"' not in text else f"'{text}'"


def join_words(items: Sequence[str]) -> str:
    """["a"] -> "a"; ["a", "b", "c"] -> "a, b and c"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _render(value: Any, quote: bool) -> str:
    if isinstance(value, Ref):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        return _quote(value) if quote else value
    if isinstance(value, list | tuple):
        return join_words([_render(item, quote) for item in value])
    if isinstance(value, dict):
        return join_words(
            [f"{humanise(str(key))} {_render(item, quote)}" for key, item in value.items()]
        )
    return str(value)


def quoted(value: Any) -> str:
    return _render(value, quote=True)


def plain(value: Any) -> str:
    return _render(value, quote=False)


def words(value: Any) -> str:
    """An identifier-like choice in words; lists are joined, a ``Ref`` stays its phrase."""
    if isinstance(value, str):
        return humanise(value)
    if isinstance(value, list | tuple):
        return join_words([words(item) for item in value])
    return plain(value)


# --- the verbaliser ---------------------------------------------------------------------------


class Verbaliser:
    """Renders calls as English phrases with the per-environment macro modules."""

    def __init__(self, template_dir: Path = PROMPTS_DIR / "verbalise") -> None:
        self.template_dir = template_dir
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
        )
        self.env.filters.update(q=quoted, v=plain, words=words)
        self.env.tests["ref"] = lambda value: isinstance(value, Ref)
        self._modules: dict[str, Any] = {}

    def _module(self, env_name: str) -> Any:
        if env_name not in self._modules:
            try:
                template = self.env.get_template(f"{env_name}.j2")
            except jinja2.TemplateNotFound:
                raise KeyError(
                    f"no verbalise template for environment {env_name!r} "
                    f"(expected {self.template_dir / (env_name + '.j2')})"
                ) from None
            self._modules[env_name] = template.module
        return self._modules[env_name]

    def macro(self, tool: str) -> Macro:
        """The macro of a qualified tool (``filesystem.cd``); ``KeyError`` when there is none."""
        env_name, _, function = tool.partition(".")
        found = getattr(self._module(env_name), function, None)
        if not isinstance(found, Macro):
            raise KeyError(
                f"no verbalise macro for tool {tool!r}: add "
                f"{{% macro {function}(...) %}} to {self.template_dir / (env_name + '.j2')}"
            )
        return found

    def phrase(self, call: Call, refs: Mapping[str, Ref] | None = None) -> str:
        """One call as an imperative phrase; ``refs`` maps argument slots (``arg`` or
        ``arg.index`` for a list element) to the ``Ref`` rendered in place of the value."""
        macro = self.macro(call.tool)
        arguments: dict[str, Any] = dict(call.arguments)
        for slot, plain_ref in (refs or {}).items():
            ref = _marked(plain_ref)
            name, _, index = slot.partition(".")
            if name not in arguments:
                raise ValueError(f"step {call.id}: a reference for {slot!r}, not an argument")
            if index:
                value = arguments[name]
                if not (index.isdigit() and isinstance(value, list) and int(index) < len(value)):
                    raise ValueError(f"step {call.id}: {slot!r} does not index a list argument")
                value = list(value)
                value[int(index)] = ref
                arguments[name] = value
            else:
                arguments[name] = ref
        unknown = sorted(set(arguments) - set(macro.arguments))
        if unknown:
            raise ValueError(
                f"the macro for {call.tool} takes {', '.join(macro.arguments) or 'no arguments'}"
                f"; step {call.id} passes {', '.join(unknown)}"
            )
        try:
            text = str(macro(**arguments))
        except jinja2.UndefinedError as error:
            raise ValueError(f"step {call.id} ({call.tool}): {error}") from None
        return _smooth_references(text.strip())

    def refs(self, calls: Sequence[Call], position: int) -> dict[str, Ref]:
        """The ``Ref`` of each bound slot of ``calls[position]``."""
        index = {call.id: i for i, call in enumerate(calls)}
        call = calls[position]
        found: dict[str, Ref] = {}
        for slot, source in call.bindings.items():
            producer, _, path = source.partition(".")
            if producer not in index:
                raise ValueError(f"step {call.id} binds {slot!r} to unknown step {producer!r}")
            found[slot] = Ref(
                index[producer] + 1,
                slot.partition(".")[0],
                path=path,
                consumer_index=position + 1,
                meaning=_meaning(calls[index[producer]], path),
            )
        return found

    def question(self, calls: Sequence[Call]) -> str:
        """All calls as one request: "First, ...; then ...; finally ...."."""
        phrases = [self.phrase(call, self.refs(calls, i)) for i, call in enumerate(calls)]
        if not phrases:
            raise ValueError("a question needs at least one call")
        if len(phrases) == 1:
            text = phrases[0][:1].upper() + phrases[0][1:]
        else:
            middle = "".join(f"; then {phrase}" for phrase in phrases[1:-1])
            last = "finally" if len(phrases) > 2 else "then"
            text = f"First, {phrases[0]}{middle}; {last} {phrases[-1]}"
        if text.endswith((".", "?", "!")) or re.search(r"[.?!][\'\"]$", text):
            return text  # a quoted sentence already ends it
        return text + "."


#: how a reference names a value of a type, where the type's own name is jargon ("the data
#: text", "the field value"); a value whose meaning depends on where it was found reads as
#: "the value found in the previous step"
_REF_NOUNS: dict[Sem, str] = {
    Sem.DATA_TEXT: "document's text",
    Sem.JSON_TEXT: "JSON text",
    Sem.CSV_TEXT: "CSV text",
    Sem.KV_TEXT: "key/value text",
    Sem.MARKDOWN_TEXT: "Markdown table",
    Sem.FIELD_VALUE: "value found",
    Sem.RECORD: "record",
    Sem.RECORDS: "records",
}

#: an aggregate a producing call computed (its ``function`` argument), as a noun: the value
#: it returns is "the maximum from the previous step"
_AGGREGATE_NOUNS = {
    "max": "maximum", "min": "minimum", "avg": "average", "mean": "average", "sum": "sum",
    "count": "count", "median": "median",
}  # fmt: skip


def _meaning(producer: Call, path: str) -> str | None:
    """What the value at ``path`` of ``producer``'s output is, in words; ``None`` when its
    type says nothing a sentence could use (a plain number, free text)."""
    try:
        sem = resolve_tool(producer.tool)[1].result_type(path)
    except ToolError:
        return None
    if sem is None or sem in (Sem.NUMBER, Sem.TEXT):
        return None
    function = producer.arguments.get("function")
    if sem is Sem.FIELD_VALUE and isinstance(function, str) and function in _AGGREGATE_NOUNS:
        return _AGGREGATE_NOUNS[function]
    return _REF_NOUNS.get(sem) or describe(sem)


def verbalise(task: Task, verbaliser: Verbaliser) -> Task:
    """The task with its question rewritten from its calls; it needs validating again."""
    question = verbaliser.question(task.calls)
    return task.model_copy(
        update={
            "question": question,
            "expected": None,
            "lineage": Lineage(
                parents=[task.id],
                operator="verbalise",
                round=task.lineage.round + 1,
                source=task.lineage.source,
            ),
        }
    ).with_content_id()
