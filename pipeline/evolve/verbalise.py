"""The ``verbalise`` operator: write a task's question from its calls, by template, no LLM.

Every environment has a Jinja2 module ``prompts/verbalise/<env>.j2`` holding one macro per tool,
named like the tool and taking the tool's parameters. A macro renders a short imperative phrase
for one call ("go into the folder 'documents'") that contains every literal argument verbatim,
so the grounding check passes, and never spells out a tool name. The phrases of a task's calls
are joined into one request ("First, ...; then ...; finally ....").

An argument that a call takes from an earlier output (a declared binding) is not written as its
value: the macro receives a :class:`Ref` instead, which reads as "the user id from the previous
step". The question then asks for the dependency instead of giving the answer away. A reference
names the value as a person would: an entry of a listing of named things is "the third file
listed in the previous step"; a data text is named by its format ("the key/value text"), "the
document's text" only for a stored document a step read; consecutive elements of one earlier
list read as one phrase ("the first and third parts"), and a list argument that holds, in
order, every element of an earlier list (known from the outputs) is that list ("the watch list
from the previous step").

Templates can use these helpers besides the usual Jinja2 ones:

- filter ``q``: a string in quotes (single, or double when it holds a single quote), a number
  as written, a list as "a, b and c"; a ``Ref`` as its phrase;
- filter ``v``: the same without quotes (units, symbols, tags, ids);
- filter ``words``: an identifier-like choice in words (``rear_left`` -> "rear left");
- test ``ref``: whether a value is a ``Ref`` (``{% if ticket_id is ref %}``);
- ``_common.j2``: shared macros, imported with ``{% import '_common.j2' as c %}``.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from jinja2.runtime import Macro

from pipeline.conditions import control_edges
from pipeline.dependencies import ancestor_sets, infer_dependencies
from pipeline.envs import ToolError, ToolKind, resolve_tool
from pipeline.models import Call, Task
from pipeline.replay import replay
from pipeline.semantics import RENAMEABLE_TYPES, Sem, describe

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


_COUNT_WORDS = (
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
)  # fmt: skip

#: words after which a noun phrase qualifies its head noun: the head of "amount in dollars",
#: "number of shares" and "file listed" is its first word
_QUALIFIERS = re.compile(r" (?:in|of|listed|found)(?: |$)")


def _plural_word(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "o", "u", ""):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _plural(noun: str) -> str:
    """A noun in the plural: "stock symbol" -> "stock symbols", "file listed" -> "files
    listed", "amount in dollars" -> "amounts in dollars"."""
    qualifier = _QUALIFIERS.search(noun)
    head, tail = (noun[: qualifier.start()], noun[qualifier.start() :]) if qualifier else (noun, "")
    words = head.split(" ")
    words[-1] = _plural_word(words[-1])
    return " ".join(words) + tail


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
    if last in _AUTHOR_KEYS and len(head) >= 2 and head[-1].isdigit() and _POSTS.search(head[-2]):
        # "the author of the first matching tweet", not "the username of ..."
        return f"the author of {_describe(head)}"
    phrase = f"the {humanise(last)}"
    return f"{phrase} of {_describe(head)}" if head else phrase


#: a user field of a post or comment names who wrote it
_AUTHOR_KEYS = frozenset({"username", "user_name", "user", "author"})
_POSTS = re.compile(r"(?:tweet|post|comment|repl(?:y|ies))s?$")


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
        text_format: str | None = None,
        label: str | None = None,
    ) -> None:
        self.step_index = step_index
        self.argument = argument
        self.path = path
        self.consumer_index = consumer_index
        #: what the value is by its semantic type ("zip code"), used when its place in the
        #: output says nothing ("result", a bare list index); "file listed" for an entry of a
        #: listing of named things, "value found" for a value found somewhere
        self.meaning = meaning
        #: the data format ("json", "csv", "keyvalue", "markdown") the phrase already names
        #: ("the CSV text from ..."), so a template need not name it again
        self.text_format = text_format
        #: a noun that names the value outright ("watch list", "files listed"), for a whole
        #: list whose path would read badly ("the age of the columns")
        self.label = label
        #: the only value of its kind the request's calls could refer to, so it needs no step
        #: to say which ("cancel the order", not "the order from the first step")
        self.unique = False
        #: a value the request stated that tells the entity this id names from every other
        #: one, as (field, value): "the ticket with title 'Replace mouse'" needs no step number,
        #: which readers took for a sentence number where one sentence made two calls
        self.handle: tuple[str, str] | None = None
        #: an id of the one thing of its kind the request makes before this step, so "the new
        #: ticket" names it (readers failed "the ticket with description '...'" for a ticket
        #: the same request had just opened with that description, run llm89)
        self.made = False
        #: the thing the producing call was asked about by a stated id, as (noun, id): a field
        #: of its result reads "the symbol of order 4410", not "the symbol from the previous
        #: step" (one llm101 reader: robotic); ("", "for Rivermist") for a place asked about
        #: by its name: "the zip code for Rivermist"
        self.owner: tuple[str, str] | None = None
        #: a plain field of what the step just before made or changed: "the resulting fuel
        #: level" after starting the engine, not "the fuel level from the previous step"
        #: (robotic to one llm101 reader)
        self.resulting = False
        #: the same value an earlier call of the request took from the same place: "comment
        #: on the same tweet", not "on the first matching tweet from the first step" after
        #: "retweet the first one you find" (both llm109 readers: two names for one tweet)
        self.again = False

    @property
    def _tokens(self) -> list[str]:
        return [token for token in self.path.split(".") if token]

    @property
    def where(self) -> str:
        """Which step: "from the previous step", "from the second step" ("in the previous
        step" after a value *found* there); nothing for a :attr:`unique` value."""
        if self.unique:
            return ""
        if self.label is not None:
            found = self.label.endswith(" listed")
        else:
            found = self._names_by_meaning and (self.meaning or "").endswith((" found", " listed"))
        preposition = "in" if found else "from"
        if self.consumer_index is not None and self.consumer_index == self.step_index + 1:
            return f"{preposition} the previous step"
        return f"{preposition} the {ordinal(self.step_index)} step"

    @property
    def place(self) -> str:
        """The producing step as a request names it, unique or not: "the previous step"."""
        if self.consumer_index is not None and self.consumer_index == self.step_index + 1:
            return "the previous step"
        return f"the {ordinal(self.step_index)} step"

    #: set by :meth:`Verbaliser.refs`: the value's meaning names it apart from every other
    #: value ("the sum", "the 12.5 feet in meters")
    self_named = False

    @property
    def _names_by_meaning(self) -> bool:
        """Whether :attr:`noun` names the value by its meaning, its place in the output saying
        nothing ("result", a bare list index)."""
        tokens = self._tokens
        if self.label or not self.meaning or (tokens == ["id"] and _is_id_key(self.argument)):
            return False
        return not tokens or tokens[-1].isdigit() or tokens[-1] in _VAGUE_KEYS

    @property
    def noun(self) -> str:
        """What the value is, from its place in the output ("the first matching line"); a bare
        ``id`` is named after the argument ("the tweet id"), the whole output is "the result"."""
        tokens = self._tokens
        if self.label is not None:
            return f"the {self.label}"
        if tokens == ["id"] and _is_id_key(self.argument):
            return f"the {humanise(self.argument)}"
        if self._names_by_meaning:
            if tokens and tokens[-1].isdigit():
                return f"the {ordinal(int(tokens[-1]) + 1)} {self.meaning}"
            return f"the {self.meaning}"
        return _describe(tokens)

    @property
    def stated_format(self) -> str | None:
        """The data format the phrase itself names ("the CSV text from ..." -> "csv")."""
        return self.text_format if self._names_by_meaning else None

    @property
    def element(self) -> tuple[int, str] | None:
        """For an element of a list (``watchlist.2``), its 0-based index and what one element is
        ("stock listed", "matching line"), as :attr:`noun` names it after the ordinal; ``None``
        for anything else."""
        tokens = self._tokens
        if self.label is not None or not tokens or not tokens[-1].isdigit():
            return None
        if self.meaning:
            return int(tokens[-1]), self.meaning
        if len(tokens) == 2 and not tokens[0].isdigit():
            return int(tokens[-1]), _singular(humanise(tokens[0]))
        return None

    def named(self, entity: str) -> str:
        """The ``entity`` this value names: "the second document listed in the previous step"
        when the phrase already says what it is, else "the document named by the ..."."""
        if self.meaning == f"{entity} listed":
            return str(self)
        return f"the {entity} named by {self}"

    def about(self, entity: str) -> str:
        """The thing the value identifies: for ``ticket_id`` taken from ``id`` of a new ticket,
        ``about("ticket")`` is "the ticket from the previous step"; values that are not ids
        read as ``str(self)``."""
        tokens = self._tokens
        if self.label is not None or not tokens or not _is_id_key(tokens[-1]):
            return str(self)
        last, rest = tokens[-1], tokens[:-1]
        if last != "id" and rest:
            # results.0.receiver_id -> "the receiver of the first result"
            owner = humanise(last[:-3] if last.endswith("_id") else last[:-2])
            return f"the {owner} of {_describe(rest)} {self.where}".rstrip()
        if not rest or (self.again and not self.unique):
            if self.again and not self.unique:
                return f"the same {entity}"
            if self.handle is not None:
                field, value = self.handle
                if field in ("name", f"{entity}_name"):
                    # even the only one: "the user" alone read as vague (run llm28); a name
                    # of someone else is no name of it ("the card 'Priya Raman'" for the
                    # cardholder's name read as robotic to both llm103 readers)
                    return f"the {entity} {quoted(value)}"  # "the user 'Priya Nair'"
            if self.made and not self.unique:
                return f"the new {entity}"
            if self.handle is not None and not self.unique:
                field, value = self.handle
                return f"the {entity} with {humanise(field)} {quoted(value)}"
            return f"the {entity} {self.where}".rstrip()
        if rest[-1].isdigit() and len(rest) == 1:
            return f"the {ordinal(int(rest[0]) + 1)} {entity} {self.where}".rstrip()
        return f"{_describe(rest)} {self.where}".rstrip()

    def __str__(self) -> str:
        noun = self.noun
        if self.owner is not None and not self.unique:
            entity, stated = self.owner
            # an id names its thing ("of order 4410"); a place is what a read was for
            return f"{noun} of {entity} {stated}" if entity else f"{noun} {stated}"
        if self.resulting and not self.unique and noun.startswith("the "):
            return f"the resulting {noun.removeprefix('the ')}"
        if noun == "the result":  # "the result of the previous step"
            text = f"{noun} {self.where.replace('from ', 'of ', 1)}"
        else:
            text = f"{noun} {self.where}".rstrip()
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
    marked = copy.copy(ref)
    marked.__class__ = _MarkedRef
    return marked


def both_results(first: Any, second: Any) -> str:
    """Two whole results of the two steps just before their consumer, taken together by an
    operation whose order does not matter, as "the two results"; "" otherwise. "add the 12.5
    feet in meters and the 10 feet in meters" right after both conversions read as template
    text to both llm127 readers. Two calculations named apart ("the sum and the product")
    keep their names."""
    if not (isinstance(first, Ref) and isinstance(second, Ref)):
        return ""
    consumer = first.consumer_index
    if consumer is None or second.consumer_index != consumer:
        return ""
    if {first.step_index, second.step_index} != {consumer - 1, consumer - 2}:
        return ""
    if first.path != "result" or second.path != "result" or first.label or second.label:
        return ""
    computed = set(COMPUTED_NOUNS.values())
    if first.meaning in computed and second.meaning in computed and first.meaning != second.meaning:
        return ""
    text = "the two results"
    return f"{_REF_START}{text}{_REF_END}" if isinstance(first, _MarkedRef) else text


class _Phrase(str):
    """Text rendered as it is, never quoted (a phrase naming earlier values)."""


def _same_list(first: Ref, other: Ref) -> bool:
    """Whether two references are elements of one list of one step's output, named alike."""
    a, b = first.element, other.element
    return (
        a is not None
        and b is not None
        and a[1] == b[1]
        and first.step_index == other.step_index
        and first.consumer_index == other.consumer_index
        and first._tokens[:-1] == other._tokens[:-1]
    )


def _elements_phrase(run: Sequence[Ref]) -> str:
    """Several elements of one earlier list as one phrase: "the first and third stocks listed in
    the previous step", "the first four matching lines from the previous step"."""
    first = run[0]
    elements = [ref.element for ref in run]
    indices = [element[0] for element in elements if element is not None]
    noun = _plural(elements[0][1] if elements[0] is not None else "value")
    if indices == list(range(len(indices))) and len(indices) - 2 < len(_COUNT_WORDS):
        which = f"first {_COUNT_WORDS[len(indices) - 2]}"
    else:
        which = join_words([ordinal(index + 1) for index in indices])
    text = f"the {which} {noun} {first.where}".rstrip()
    if isinstance(first, _MarkedRef):
        return f"{_REF_START}{text}{_REF_END}"
    return text


def _step_said_once(text: str, refs: Sequence[Ref]) -> str:
    """Entries of one earlier list that a phrase names apart say their step once, after the
    last: "from the second date to the third date from the first step" (readers called "the
    second date from the first step to the third date from the first step" robotic, run
    ``llm97``)."""
    listed = [ref for ref in refs if ref.element is not None and ref.where and ref.handle is None]
    done: set[int] = set()
    for ref in listed:
        mates = [other for other in listed if other is ref or _same_list(ref, other)]
        if len(mates) < 2 or id(ref) in done:
            continue
        done.update(id(mate) for mate in mates)
        marked = [(text.find(f"{_REF_START}{Ref.__str__(m)}{_REF_END}"), m) for m in mates]
        found = sorted((at, mate) for at, mate in marked if at >= 0)
        for at, mate in reversed(found[:-1]):
            whole = f"{_REF_START}{Ref.__str__(mate)}{_REF_END}"
            text = f"{text[:at]}{_REF_START}{mate.noun}{_REF_END}{text[at + len(whole) :]}"
    return text


def _grouped(items: Sequence[Any]) -> list[Any]:
    """A list's items with each run of consecutive references to elements of one earlier list
    joined into one phrase (a string), so it reads "the first and second parts from the
    previous step" and not "the first part from the previous step and the second part from
    the previous step"."""
    grouped: list[Any] = []
    run: list[Ref] = []

    def flush() -> None:
        if len(run) > 1:
            grouped.append(_Phrase(_elements_phrase(run)))
        else:
            grouped.extend(run)
        run.clear()

    for item in items:
        if isinstance(item, Ref) and run and _same_list(run[0], item):
            run.append(item)
            continue
        flush()
        if isinstance(item, Ref) and item.element is not None:
            run.append(item)
        else:
            grouped.append(item)
    flush()
    return grouped


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
    if isinstance(value, Ref | _Phrase):
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
        return join_words([_render(item, quote) for item in _grouped(value)])
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
    if isinstance(value, _Phrase):
        return str(value)
    if isinstance(value, str):
        return humanise(value)
    if isinstance(value, list | tuple):
        return join_words([words(item) for item in _grouped(value)])
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
        self.env.globals["both_results"] = both_results
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
        text = _step_said_once(text, list((refs or {}).values()))
        return _smooth_references(text.strip())

    def refs(
        self,
        calls: Sequence[Call],
        position: int,
        outputs: Sequence[Any] | None = None,
        by_content: bool = False,
    ) -> dict[str, Ref]:
        """The ``Ref`` of each bound slot of ``calls[position]``.

        With the calls' ``outputs``, a list argument whose elements are, in order, every
        element of one list an earlier step returned is one reference to that whole list
        ("the watch list from the previous step") instead of one reference per element.
        ``by_content`` (with ``outputs``) names a value no other earlier call could have given
        without its step ("cancel the order"): blind readers called step references robotic
        in requests a person wrote."""
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
                text_format=_text_format(calls[index[producer]], path),
            )
        if outputs is not None:
            for name, value in call.arguments.items():
                whole = _whole_list(name, value, found, calls, outputs)
                if whole is not None and isinstance(value, list):
                    for element in range(len(value)):
                        del found[f"{name}.{element}"]
                    found[name] = whole
            if by_content:
                for slot, ref in found.items():
                    ref.self_named = ref.meaning is not None and (
                        ref.meaning in COMPUTED_NOUNS.values()
                        or ref.meaning == _converted(calls[ref.step_index - 1], ref.path)
                    )
                    ref.unique = _unique(calls, position, outputs, slot.partition(".")[0], ref)
                    ref.handle = _handle(calls, position, outputs, ref)
                    ref.made = _only_made(calls, position, outputs, ref)
                    ref.owner = _owner(calls[ref.step_index - 1], ref)
                    ref.resulting = _resulting(calls[ref.step_index - 1], ref)
                    ref.again = _taken_before(calls, position, call.bindings.get(slot))
        return found

    def question(
        self, calls: Sequence[Call], outputs: Sequence[Any] | None = None, by_content: bool = False
    ) -> str:
        """All calls as one request: "First, ...; then ...; finally ....". The calls'
        ``outputs`` (when known) let a list taken whole from an earlier step read as that
        list; without them it reads as its elements ("the first four stocks listed in ...").
        ``by_content``: as :meth:`refs` says."""
        phrases = [
            self.phrase(call, self.refs(calls, i, outputs, by_content))
            for i, call in enumerate(calls)
        ]
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


#: what a calculation returns, by its tool: "multiply the sum by 2", not "multiply the result
#: of the previous step by 2" (robotic to both llm107 readers)
COMPUTED_NOUNS = {
    "add": "sum", "subtract": "difference", "multiply": "product", "divide": "quotient",
    "square_root": "square root", "logarithm": "logarithm", "round_number": "rounded number",
    "absolute_value": "absolute value", "mean": "mean", "standard_deviation":
    "standard deviation", "max_value": "maximum", "min_value": "minimum", "sum_values": "total",
}  # fmt: skip


def _converted(producer: Call, path: str) -> str | None:
    """A conversion of a stated amount, as what it is: "12.5 feet in meters" (both llm109
    readers could not tell "the result of the second step" apart in a request that converts
    two lengths in one sentence)."""
    try:
        conversion = resolve_tool(producer.tool)[1].converts
    except ToolError:
        return None
    if conversion is None or path != "result" or conversion.value in producer.bindings:
        return None
    value = producer.arguments.get(conversion.value)
    unit_in = producer.arguments.get(conversion.unit_in)
    unit_out = producer.arguments.get(conversion.unit_out)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if not isinstance(unit_in, str) or not isinstance(unit_out, str):
        return None
    return f"{_number_words(value)} {unit_in} in {unit_out}"


def _number_words(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


#: types that name a thing a listing lists: an entry of a list of them is "the second file
#: listed in the previous step", not "the second file name from the previous step"
_ENTITY_NOUNS: dict[Sem, str] = {
    Sem.FILE_NAME: "file",
    Sem.FOLDER_NAME: "folder",
    Sem.DOCUMENT_ID: "document",
    Sem.TABLE_NAME: "table",
    Sem.BUFFER_ID: "buffer",
    Sem.COLUMN_NAME: "column",
    Sem.USER_NAME: "user",
    Sem.STOCK_SYMBOL: "stock",
}

#: a data format's name (the value of a format argument) -> the type of a text in that format
_FORMAT_TEXTS: dict[str, Sem] = {
    "json": Sem.JSON_TEXT,
    "csv": Sem.CSV_TEXT,
    "keyvalue": Sem.KV_TEXT,
    "markdown": Sem.MARKDOWN_TEXT,
}

#: format arguments that say what a call reads, not what it writes
_INPUT_FORMAT = re.compile(r"^(?:source|input|from)(?:_|$)")


def _shapes(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path into ``value``, list positions as ``*``."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _shapes(item, (*prefix, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _shapes(item, (*prefix, "*"))


def _unique(
    calls: Sequence[Call], position: int, outputs: Sequence[Any], argument: str, ref: Ref
) -> bool:
    """Whether ``ref`` names its value without its step: its path says what the value is (not
    "result" or "values"), no other call before the consumer returned something at such a
    path, and none took another value of the consuming argument's type."""
    tokens = ref._tokens
    if ref.label is None and any(token.isdigit() for token in tokens):
        return False  # "the first ticket" alone: first of which list? (run llm30)
    named = any(t not in _VAGUE_KEYS and not t.isdigit() for t in tokens)
    producer = ref.step_index - 1
    bare_field = (
        len(tokens) == 1 and not _is_id_key(tokens[0]) and not _reads_the_session(calls[producer])
    )
    # a bare field of a result ("the symbol") reads as a blank without its owner; an id names
    # its entity ("the order"), a typed value its meaning ("the JSON text"); the session has
    # one car, one account ("the fuel level")
    if ref.label is None and not ref._names_by_meaning and (not named or bare_field):
        return False
    shape = tuple("*" if token.isdigit() else token for token in tokens)
    for index in range(position):
        # another value of its kind; "the JSON text" is not one of "the document's text"
        if (
            index != producer
            and index < len(outputs)
            and shape in set(_shapes(outputs[index]))
            and (ref.meaning is None or _meaning(calls[index], ref.path) in (None, ref.meaning))
        ):
            return False
    if ref.self_named:
        return True  # "the sum" is the one sum, whatever numbers the request states
    try:
        wanted = resolve_tool(calls[position].tool)[1].param_types.get(argument)
    except ToolError:
        return False
    value = calls[position].arguments.get(argument)
    for call in calls[:position]:
        try:
            types = resolve_tool(call.tool)[1].param_types
        except ToolError:
            return False
        for name, given in call.arguments.items():
            if wanted is not None and types.get(name) is wanted and given != value:
                return False
    return True


def _reads_the_session(call: Call) -> bool:
    """Whether ``call`` reads what the session has one of (the car, the account), choosing at
    most which part by a fixed option: a field of its result needs no owner and no step
    ("convert the fuel level from gallons to liters"; "the fuel level from the previous step"
    read as robotic to one llm101 reader). So does a write set only by such options: the fuel
    level stopping the engine reports is the car's ("convert the fuel level from the second
    step", where no one asked to see it, read as a build leftover to an llm137 reader)."""
    try:
        spec = resolve_tool(call.tool)[1]
    except ToolError:
        return False
    properties = spec.parameters.get("properties", {})
    return all(
        "enum" in properties.get(name, {}) or isinstance(value, bool)
        for name, value in call.arguments.items()
    )


#: the longest stated value that may name an entity ("the ticket with title '...'")
_HANDLE_MAX_CHARS = 48


def _handle(
    calls: Sequence[Call], position: int, outputs: Sequence[Any], ref: Ref
) -> tuple[str, str] | None:
    """For an id a step returned beside values it was given (a new ticket's ``title``), or
    beside the name it was given for what it made (a new contact's ``user_name``), the first
    such short text no other call before the consumer passed: the request states it, and it
    tells this entity from the others of its kind."""
    tokens = ref._tokens
    producer = ref.step_index - 1
    if tokens != ["id"] and not (len(tokens) == 1 and _is_id_key(tokens[0])):
        return None
    if producer >= len(outputs) or not isinstance(outputs[producer], dict):
        return None
    returned = outputs[producer]
    call = calls[producer]
    try:
        types = resolve_tool(call.tool)[1].param_types
    except ToolError:
        return None
    # a field the step itself rewrites names the thing by what it is about to stop being
    changed = set(_fields_set(calls[position].arguments)) if position < len(calls) else set()
    for field, value in call.arguments.items():
        if (
            field in call.bindings
            or field in changed
            or _is_id_key(field)
            or not isinstance(value, str)
            or not 0 < len(value.strip()) <= _HANDLE_MAX_CHARS
        ):
            continue
        # echoed beside the id, or the name the call gave what it made ("Priya Nair")
        if returned.get(field) != value and types.get(field) not in RENAMEABLE_TYPES:
            continue
        if not any(
            value in other.arguments.values()
            for index, other in enumerate(calls[:position])
            if index != producer
        ):
            return field, value
    return None


def _owner(producer: Call, ref: Ref) -> tuple[str, str] | None:
    """What a field of ``producer``'s result belongs to, where the call was asked about one
    thing by a stated id (``get_order_details(order_id=4410)``: "order 4410") or, given no id,
    by one stated name (see :func:`_subject`); ``None`` for a value that is not one plain
    field, or a call given no such id or more than one."""
    tokens = ref._tokens
    if ref.label is not None or len(tokens) != 1 or _is_id_key(tokens[0]) or tokens[0].isdigit():
        return None
    if tokens[0] in _VAGUE_KEYS:
        return None  # "the result of order 4410" says nothing
    try:
        if resolve_tool(producer.tool)[1].kind is not ToolKind.READ:
            # a log-in given a client id: "the access token of client cli_88213" read as
            # robotic to both llm103 readers; only a read is about the thing its id names
            return None
    except ToolError:
        return None
    ids = [
        (name, value)
        for name, value in producer.arguments.items()
        if _is_id_key(name) and name not in producer.bindings
    ]
    if not ids:
        return _subject(producer)
    if len(ids) != 1 or not isinstance(ids[0][1], int | str) or isinstance(ids[0][1], bool):
        return None
    name, value = ids[0]
    entity = humanise(name[:-3] if name.endswith("_id") else name[:-2])
    if not entity:
        return None
    return entity, str(value)


#: types of a stated name a read may be about: "the zip code for Rivermist"
_SUBJECT_TYPES = frozenset({Sem.CITY, Sem.AIRPORT, Sem.STOCK_SYMBOL, Sem.COMPANY_NAME})


def _subject(producer: Call) -> tuple[str, str] | None:
    """``("", "for Rivermist")`` where a read was asked about one place, or ``("", "of NVDA")``
    about one company or stock, by its stated name
    and nothing else: "from the nearest airport for Rivermist to the nearest airport for
    Stonebrook", not "from the nearest airport from the first step to the nearest airport
    from the previous step" (one llm97 reader)."""
    try:
        types = resolve_tool(producer.tool)[1].param_types
    except ToolError:
        return None
    stated = [
        (name, value) for name, value in producer.arguments.items() if name not in producer.bindings
    ]
    if len(stated) != 1 or len(producer.arguments) != 1:
        return None
    name, value = stated[0]
    if types.get(name) not in _SUBJECT_TYPES or not isinstance(value, str):
        return None
    if not 0 < len(value.strip()) <= _HANDLE_MAX_CHARS:
        return None
    preposition = "for" if types.get(name) in (Sem.CITY, Sem.AIRPORT) else "of"
    return "", f"{preposition} {value}"


def _taken_before(calls: Sequence[Call], position: int, source: str | None) -> bool:
    """Whether a call before ``calls[position]`` took a value from ``source`` too."""
    return source is not None and any(source in c.bindings.values() for c in calls[:position])


def _resulting(producer: Call, ref: Ref) -> bool:
    """Whether ``ref`` is one plain field of the result of a write made just before its
    consumer (see :attr:`Ref.resulting`)."""
    tokens = ref._tokens
    if ref.label is not None or ref._names_by_meaning or len(tokens) != 1:
        return False
    if _is_id_key(tokens[0]) or tokens[0] in _VAGUE_KEYS or tokens[0].isdigit():
        return False
    if ref.consumer_index != ref.step_index + 1:
        return False
    try:
        return resolve_tool(producer.tool)[1].kind is ToolKind.WRITE
    except ToolError:
        return False


def _fields_set(arguments: Mapping[str, Any]) -> Iterator[str]:
    """The argument names of a call and the keys of its dict arguments (``updates``)."""
    for name, value in arguments.items():
        yield name
        if isinstance(value, dict):
            yield from (str(key) for key in value)


def _makes(call: Call, output: Any) -> bool:
    """Whether ``call`` made a new thing: a write that returned an ``id`` and was given none."""
    try:
        spec = resolve_tool(call.tool)[1]
    except ToolError:
        return False
    return (
        spec.kind is ToolKind.WRITE
        and isinstance(output, dict)
        and "id" in output
        and not any(_is_id_key(name) for name in call.arguments)
    )


def _only_made(calls: Sequence[Call], position: int, outputs: Sequence[Any], ref: Ref) -> bool:
    """Whether ``ref`` is the id of the only thing the calls before the consumer made."""
    producer = ref.step_index - 1
    if ref._tokens != ["id"] or producer >= len(outputs):
        return False
    if not _makes(calls[producer], outputs[producer]):
        return False
    others = [
        index
        for index in range(min(position, len(outputs)))
        if index != producer and _makes(calls[index], outputs[index])
    ]
    return not others


def _result_sem(producer: Call, path: str) -> Sem | None:
    try:
        return resolve_tool(producer.tool)[1].result_type(path)
    except ToolError:
        return None


def _written_format(producer: Call) -> str | None:
    """The format of the data text a call writes: the value of its one format argument that
    does not name the format it reads ("target_format", not "source_format")."""
    try:
        spec = resolve_tool(producer.tool)[1]
    except ToolError:
        return None
    written = [
        name
        for name, sem in spec.param_types.items()
        if sem is Sem.FORMAT and not _INPUT_FORMAT.match(name)
    ]
    if len(written) != 1:
        return None
    value = producer.arguments.get(written[0])
    return value if isinstance(value, str) and value in _FORMAT_TEXTS else None


def _loads_document(producer: Call) -> bool:
    """Whether a call reads a stored document by its name (so its text is "the document's
    text"), rather than making a text of its own."""
    try:
        spec = resolve_tool(producer.tool)[1]
    except ToolError:
        return False
    return any(
        sem is Sem.DOCUMENT_ID and name in producer.arguments
        for name, sem in spec.param_types.items()
    )


def _text_format(producer: Call, path: str) -> str | None:
    """The data format of the text at ``path`` of ``producer``'s output, where the calls say it:
    a JSON text is JSON; a data text is in the format the producer was asked to write."""
    sem = _result_sem(producer, path)
    for name, text in _FORMAT_TEXTS.items():
        if sem is text:
            return name
    if sem is Sem.DATA_TEXT:
        return _written_format(producer)
    return None


def _meaning(producer: Call, path: str) -> str | None:
    """What the value at ``path`` of ``producer``'s output is, in words; ``None`` when its
    type says nothing a sentence could use (a plain number, free text)."""
    sem = _result_sem(producer, path)
    if sem is Sem.NUMBER and path == "result" and producer.function in COMPUTED_NOUNS:
        return COMPUTED_NOUNS[producer.function]
    converted = _converted(producer, path)
    if converted is not None:
        return converted
    if sem is None or sem in (Sem.NUMBER, Sem.TEXT):
        return None
    function = producer.arguments.get("function")
    if sem is Sem.FIELD_VALUE and isinstance(function, str) and function in _AGGREGATE_NOUNS:
        return _AGGREGATE_NOUNS[function]
    if sem is Sem.DATA_TEXT:
        # a text is named by its format where the call wrote one; "the document's text" only
        # for a stored document the call read
        written = _written_format(producer)
        if written is not None:
            return _REF_NOUNS[_FORMAT_TEXTS[written]]
        return _REF_NOUNS[sem] if _loads_document(producer) else "text"
    tokens = path.split(".")
    if sem in _ENTITY_NOUNS and tokens[-1].isdigit():
        return f"{_ENTITY_NOUNS[sem]} listed"
    return _REF_NOUNS.get(sem) or describe(sem)


def _at(value: Any, tokens: Sequence[str]) -> Any:
    """The value at a path inside an output; ``None`` where there is none."""
    for token in tokens:
        if isinstance(value, dict):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
    return value


def _whole_list(
    name: str, value: Any, found: Mapping[str, Ref], calls: Sequence[Call], outputs: Sequence[Any]
) -> Ref | None:
    """One reference to a whole list of an earlier output, when the list argument ``name``
    holds, in order, every element of that list (each bound: ``stocks.i`` -> ``s1.watchlist.i``);
    ``None`` otherwise."""
    if not isinstance(value, list) or len(value) < 2:
        return None
    elements = [found.get(f"{name}.{slot}") for slot in range(len(value))]
    first = elements[0]
    if first is None:
        return None
    head = first._tokens[:-1]
    for slot, ref in enumerate(elements):
        if ref is None or ref.step_index != first.step_index or ref._tokens != [*head, str(slot)]:
            return None
    producer = first.step_index - 1
    if producer >= len(outputs):
        return None
    whole = _at(outputs[producer], head)
    if not isinstance(whole, list) or len(whole) != len(value):
        return None
    return Ref(
        first.step_index,
        name,
        path=".".join(head),
        consumer_index=first.consumer_index,
        label=_list_label(head[-1] if head else "", first.meaning),
    )


def _list_label(key: str, element: str | None) -> str:
    """A whole list named by its key, or by what its elements are: "watch list", "parts",
    "files listed" (a listing of named things), "age values" (a key naming one element)."""
    noun = humanise(key) if key and key not in _VAGUE_KEYS else ""
    if noun.endswith("list"):
        return noun
    if element is not None and (element.endswith(" listed") or not noun):
        return _plural(element)
    if not noun:
        return "values"
    return noun if noun.endswith("s") else f"{noun} values"


def _dependencies_for(task: Task, question: str) -> list[Call]:
    """The calls with the dependencies the new wording needs: a value the old question left to
    an earlier step (10.04 gallons, the conversion rounded) and the new one states is no longer
    waited for; bindings, and edges that execution needs, stay."""
    inferred = infer_dependencies(task.envs, task.initial_config, task.calls, question)
    position = {call.id: index for index, call in enumerate(task.calls)}
    needed = ancestor_sets([{position[p] for p in call.depends_on} for call in inferred])
    calls: list[Call] = []
    for j, call in enumerate(task.calls):
        bound = {source.split(".", 1)[0] for source in call.bindings.values()}
        kept = {p for p in call.depends_on if p in bound or position[p] in needed[j]}
        if kept != set(call.depends_on):  # what a dropped edge implied, execution may need
            kept |= set(inferred[j].depends_on)
        ordered = [earlier.id for earlier in task.calls[:j] if earlier.id in kept]
        calls.append(call.model_copy(update={"depends_on": ordered}))
    return calls


@functools.cache
def shared_verbaliser() -> Verbaliser:
    """The verbaliser of the packaged templates, compiled once per process: compiling them
    took a tenth of an offline evolve run when each shard made its own."""
    return Verbaliser()


def verbalise(task: Task, verbaliser: Verbaliser) -> Task | None:
    """The task with its question rewritten from its calls; it needs validating again.

    ``None`` for a task whose question makes steps conditional ("if any tyre is low, find a
    shop", "post 'healthy' or 'not healthy'"): the calls say what was done, not why, so a
    question written from them would drop the condition (and with it the reason for the
    values). Dependencies follow the new wording (:func:`_dependencies_for`)."""
    if control_edges(task.question, task.calls):
        return None
    outputs = [outcome.result for outcome in replay(task).outcomes]
    question = verbaliser.question(task.calls, outputs)
    calls = _dependencies_for(task, question)
    return task.derive("verbalise", question=question, calls=calls)
