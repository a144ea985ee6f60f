"""The ``rename`` operator: rename names a user gave to things, consistently everywhere.

A candidate is a string passed literally (not through ``bindings``) to a parameter whose
semantic type is one of :data:`pipeline.semantics.RENAMEABLE_TYPES` — a file or folder name, a
person's or user's name, a title, a table, buffer or document name — that the question states
verbatim (case-sensitively, as a whole token), and that names something the initial state holds
or a call creates (a value only searched for, like the fragment of ``find(name='invoice')``, is
no name). Nothing else ever changes: dates, numbers, units, status words, ids, enum choices the
schema offers and the API's own vocabulary are not names, and neither are values the
simulators look up in built-in tables (cities, airports, stock symbols), whose types are not
renameable. A value also passed to a parameter of another type is left alone.

Each chosen name gets a fresh one of the same kind and shape: a sigil (``@kim``, ``#fun``) and
a file's extension stay, the letter case pattern, separators and camel-case humps stay
(``meeting_notes.txt`` -> ``harbor_quill.txt``, ``FinalReport`` -> ``CedarAtlas``), digits
and single letters stay (``birdwatcher_88`` -> ``mateo_88``, ``dana_w`` -> ``noor_w``). Person
names take a first name from a pool (one that fits "he"/"she" when the question uses them; a
surname is kept, a surname parameter gets a surname), user names are lowercase handles built
from first names, everything else takes words from a pool; a new name occurs nowhere in the
task before.

The question changes only at the spans where the value stands as a whole token — never inside
a longer word, and never inside the quoted span of another value (the message 'Welcome aboard,
Priya!' stays as written). A plain lowercase word is also English: where the question quotes it
('tasks'), its unquoted occurrences are prose ("show me the tasks in 'tasks'"), unless a kind
noun stands next to them ("the tasks table"); where it never quotes it, an occurrence after an
article is prose. Values and dict keys exactly equal to the old name change in the state and in
every call's arguments; inside longer strings (a file's content, a path, a message in the
state) only whole-token occurrences change.

A rename is kept only when every argument the question or the state stated is still stated,
and a replay of the renamed calls gives exactly the old results and final state under the new
names (so a search that would stop matching, or a list whose first item would change, is not
renamed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipeline.envs import ENVIRONMENTS, ToolError, ToolKind, resolve_tool
from pipeline.jsontree import strings
from pipeline.models import Task
from pipeline.replay import replay
from pipeline.semantics import RENAMEABLE_TYPES, Sem
from pipeline.validate.grounding import Sources, schema_offers

_NAME_POOL = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "iris", "juniper",
    "kestrel", "lumen", "maple", "nectar", "onyx", "pepper", "quartz", "raven", "sierra",
    "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr", "atlas", "beacon",
    "canyon", "dune", "echo", "falcon", "glacier", "heron", "indigo", "jasper", "kelp", "lagoon",
    "meadow", "nova", "orchid", "pylon", "quill", "ridge", "saffron", "thistle", "vertex", "wren",
    "zenith",
)  # fmt: skip
#: first names for people (and the first part of user handles), by the pronouns that fit them
_FEMALE_NAMES = (
    "Alice", "Priya", "Ingrid", "Amara", "Elena", "Lucia", "Hana", "Zara", "Leila", "Chloe",
    "Esther", "Greta", "Imani", "Keiko", "Marisol", "Nadia", "Paloma", "Rosa", "Talia", "Vera",
    "Ximena", "Yara", "Zofia", "Anouk",
)  # fmt: skip
_MALE_NAMES = (
    "Mateo", "Tomas", "Felix", "Kofi", "Sven", "Ravi", "Omar", "Diego", "Jonas", "Nikolai",
    "Bruno", "Dmitri", "Farid", "Hugo", "Joaquin", "Lars", "Oskar", "Quentin", "Samir",
    "Ulrich", "Wendell", "Bilal",
)  # fmt: skip
_NEUTRAL_NAMES = ("Yuki", "Noor", "Robin", "Kai", "Sasha", "Jordan", "Quinn", "Rowan", "Eden")
_PERSON_POOL = _FEMALE_NAMES + _MALE_NAMES + _NEUTRAL_NAMES
_PRONOUNS = {
    "female": re.compile(r"\b(she|her|hers|herself)\b", re.IGNORECASE),
    "male": re.compile(r"\b(he|him|his|himself)\b", re.IGNORECASE),
}
#: family names, for a value passed as one (``user_last_name``)
_SURNAME_POOL = (
    "Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Castillo", "Brennan", "Sato",
    "Kowalski", "Mensah", "Ferreira", "Larsen", "Quispe", "Rahman", "Volkov", "Adeyemi",
    "Bauer", "Cohen", "Dubois", "Esposito", "Gallo", "Horvat", "Ivanova", "Jensen", "Kaur",
    "Lopez", "Murphy", "Nakamura", "Osei", "Petrov", "Rossi", "Silva", "Torres", "Ueda",
    "Varga", "Weber", "Yilmaz", "Zhou",
)  # fmt: skip
_SURNAME_PARAM = re.compile(r"last_?name|surname|family", re.IGNORECASE)
_SIGILS = "@#"
_QUOTES = (("'", "'"), ('"', '"'), ("\u2018", "\u2019"), ("\u201c", "\u201d"), ("`", "`"))
_MAX_LENGTH = 60
_TITLE_WORDS = 2
#: small words a multi-word name may share with the rest of the question
_STOPWORDS = frozenset(
    {
        "a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the",
        "to", "with", "my", "our", "your", "is", "are",
    }
)  # fmt: skip
#: nouns that say what a name names: a plain word beside one is the name ("the media folder")
_KIND_NOUNS = frozenset(
    {
        "folder", "folders", "directory", "dir", "table", "buffer", "document", "doc", "file",
        "account", "user", "handle", "sheet",
    }
)  # fmt: skip
_NAMING_WORDS = frozenset({"named", "called", "titled", "as"})
_DETERMINERS = frozenset(
    {"the", "a", "an", "this", "that", "these", "those", "each", "every", "any", "some", "all"}
)
#: a name is a whole token: not preceded by a word character, a sigil, or a word character
#: joined by ``.``/``-`` (``report`` in ``q1.report``); not followed by a word character, a
#: sigil, or ``.``/``-`` joined to more word characters (``report`` in ``report.txt``)
_LEFT = r"(?<![\w@#])(?<!\w[.\-])"
_RIGHT = r"(?![\w@])(?![.\-]\w)"
#: kinds of names, most specific first: a value passed as several kinds is shaped by the first
_KIND_ORDER = (
    Sem.PERSON_NAME, Sem.USER_NAME, Sem.TITLE, Sem.FILE_NAME, Sem.FOLDER_NAME, Sem.TABLE_NAME,
    Sem.DOCUMENT_ID, Sem.BUFFER_ID,
)  # fmt: skip
#: types a renameable value may also be passed as (a folder in a path) and still be renamed
_ALSO_ALLOWED: frozenset[Sem] = RENAMEABLE_TYPES | {Sem.PATH}
_COMPRESSED = frozenset({"gz", "bz2", "xz", "zst", "zip"})
_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}([-/.]\d{1,4})?$")
_SEPARATORS = re.compile(r"([_\-. ]+)")
#: camel-case humps, runs of capitals, lowercase words, digits, anything else
_HUMPS = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|[a-z]+|\d+|[^A-Za-z\d]+")


def _schema_words(schema: Any, found: set[str]) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found.update(value)
            if key in ("enum", "const"):
                found.update(v for v in (value if isinstance(value, list) else [value]))
            _schema_words(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _schema_words(item, found)


@cache
def api_vocabulary(env: str | None = None) -> frozenset[str]:
    """Names an API itself defines (tool, parameter and state field names, enum values), of
    environment ``env`` or of all of them: never renamed (a folder named 'documents' is fine in
    the filesystem, though the document store has a field of that name)."""
    found: set[str] = set()
    for name, cls in ENVIRONMENTS.items():
        if env is not None and name != env:
            continue
        _schema_words(cls.state_model.model_json_schema(), found)
        for tool_name, spec in cls.tool_specs().items():
            found.add(tool_name)
            _schema_words(spec.parameters, found)
    return frozenset(str(word) for word in found)


# --- finding candidates ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Use:
    """One string in a call's arguments: where it is passed and whether it is a literal."""

    value: str
    sem: Sem | None
    schema: dict[str, Any]
    literal: bool
    #: the call changes state (it may create the thing this value names)
    write: bool
    #: the parameter holds a family name (``user_last_name``)
    surname: bool


@dataclass(frozen=True)
class Candidate:
    """A name the question states and a literal argument of a renameable type carries."""

    value: str
    kind: Sem
    #: a person's family name, replaced from a pool of surnames
    surname: bool
    #: (start, end) of each span of the question that is this name
    spans: tuple[tuple[int, int], ...]


def _uses(task: Task) -> Iterator[_Use]:
    """Every string in the arguments, typed where it is passed directly (itself or as a list
    element) and untyped inside a record or mapping."""
    for call in task.calls:
        try:
            _, spec = resolve_tool(call.tool)
        except ToolError:
            continue
        properties = spec.parameters.get("properties", {})
        write = spec.kind is ToolKind.WRITE
        for name, value in call.arguments.items():
            sem = spec.param_types.get(name)
            schema = properties.get(name, {})
            surname = _SURNAME_PARAM.search(name) is not None
            whole_bound = name in call.bindings
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if isinstance(item, str):
                    bound = whole_bound or f"{name}.{index}" in call.bindings
                    yield _Use(item, sem, schema, not bound, write, surname)
                else:  # inside a record or a mapping the parameter's type says nothing of it
                    for text in strings(item):
                        yield _Use(text, None, {}, False, write, False)


def _split_sigil(value: str) -> tuple[str, str]:
    if value[:1] in _SIGILS:
        return value[:1], value[1:]
    return "", value


def _looks_like_a_name(value: str, envs: Iterable[str]) -> bool:
    _, name = _split_sigil(value)
    return (
        2 <= len(name) <= _MAX_LENGTH
        and "\n" not in value
        and any(char.isalpha() for char in name)
        and not _DATE.match(name)
        and not any(value in api_vocabulary(env) for env in envs)
    )


def _token_pattern(text: str) -> re.Pattern[str]:
    return re.compile(f"{_LEFT}{re.escape(text)}{_RIGHT}")


def _quoted(text: str, start: int, end: int) -> bool:
    return any(
        start > 0 and text[start - 1] == left and text[end : end + 1] == right
        for left, right in _QUOTES
    )


def _protected(question: str, values: Iterable[str]) -> list[tuple[int, int]]:
    """Spans of the question that quote some value of the calls (a message, a pattern ...)."""
    spans = []
    for value in set(values):
        if not value.strip():
            continue
        for left, right in _QUOTES:
            quoted = f"{left}{value}{right}"
            start = question.find(quoted)
            while start >= 0:
                spans.append((start + 1, start + 1 + len(value)))
                start = question.find(quoted, start + 1)
    return spans


def _inside(span: tuple[int, int], regions: Iterable[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in regions)


def _call_strings(task: Task) -> set[str]:
    return {text for call in task.calls for text in strings(call.arguments)}


def _is_prose(question: str, span: tuple[int, int], quoted_elsewhere: bool) -> bool:
    """Whether an unquoted occurrence of a plain lowercase word is ordinary prose rather than
    the name ("show me the tasks in 'tasks'", "the customers' 'id'"). Next to a kind noun
    ("the media folder"), or after "named"/"called", it is the name; when the question quotes
    the name elsewhere, other occurrences are prose; otherwise only one after an article is."""
    before = re.findall(r"[A-Za-z]+", question[: span[0]])[-1:]
    after = re.match(r"\W*([A-Za-z]+)", question[span[1] :])
    previous = before[0].lower() if before else ""
    following = after.group(1).lower() if after else ""
    if following in _KIND_NOUNS or previous in _KIND_NOUNS or previous in _NAMING_WORDS:
        return False
    return quoted_elsewhere or previous in _DETERMINERS


def _spans(task: Task, value: str) -> tuple[tuple[int, int], ...]:
    """Where the question names ``value``: its whole-token occurrences outside other values'
    quotes, less the occurrences of a plain word that are prose (see :func:`_is_prose`)."""
    question = task.question
    others = _protected(question, _call_strings(task) - {value})
    found = [
        match.span()
        for match in _token_pattern(value).finditer(question)
        if not _inside(match.span(), others)
    ]
    quoted = [span for span in found if _quoted(question, *span)]
    if not (value.isalpha() and value.islower()):
        return tuple(found)
    return tuple(
        span
        for span in found
        if span in quoted or not _is_prose(question, span, quoted_elsewhere=bool(quoted))
    )


def _stray_words(task: Task, value: str, spans: tuple[tuple[int, int], ...]) -> bool:
    """Whether a word of a multi-word name also stands alone in the question ("close the mouse
    ticket" beside 'Replace mouse'): renaming would leave that reference behind."""
    if " " not in value.strip():
        return False
    words = [w for w in re.findall(r"\w+", value) if w.lower() not in _STOPWORDS and len(w) > 1]
    rest = task.question
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + " " * (end - start) + rest[end:]
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", rest, re.IGNORECASE) for w in words)


def candidates(task: Task) -> list[Candidate]:
    """The names of ``task`` that ``rename`` may replace, sorted by value."""
    by_value: dict[str, list[_Use]] = {}
    for use in _uses(task):
        by_value.setdefault(use.value, []).append(use)
    in_state = set(strings(task.initial_config))
    found = []
    for value in sorted(by_value):
        uses = by_value[value]
        named = [u for u in uses if u.literal and u.sem in RENAMEABLE_TYPES]
        if not named or not _looks_like_a_name(value, task.envs):
            continue
        if any(u.sem not in _ALSO_ALLOWED or schema_offers(u.schema, value) for u in uses):
            continue
        # a name either names something that exists or is given by a call that creates it; a
        # value only looked up and found nowhere is a search fragment ("names containing
        # 'invoice'"), which a new word would no longer match
        if value not in in_state and not any(u.write for u in named):
            continue
        spans = _spans(task, value)
        if not spans or _stray_words(task, value, spans):
            continue
        kinds = {u.sem for u in named}
        kind = next(k for k in _KIND_ORDER if k in kinds)
        surname = kind is Sem.PERSON_NAME and all(u.surname for u in named)
        found.append(Candidate(value, kind, surname, spans))
    return found


def entities(task: Task) -> list[str]:
    """The values of :func:`candidates` (kept for callers that only want the names)."""
    return [candidate.value for candidate in candidates(task)]


# --- new names -------------------------------------------------------------------------------


class _Pools:
    """Shuffled pools of fresh words and first names that occur nowhere in the task."""

    def __init__(self, task: Task, rng: random.Random) -> None:
        self.taken = " ".join(strings(task.model_dump(mode="json"))).lower()
        self.words = [w for w in _NAME_POOL if w not in self.taken]
        self.people = [p for p in _PERSON_POOL if p.lower() not in self.taken]
        self.surnames = [p for p in _SURNAME_POOL if p.lower() not in self.taken]
        rng.shuffle(self.words)
        rng.shuffle(self.people)
        rng.shuffle(self.surnames)
        #: a question that speaks of a person as "her" (or "him") only gets names that fit
        genders = [g for g, pattern in _PRONOUNS.items() if pattern.search(task.question)]
        self.fitting: frozenset[str] | None = None
        if genders == ["female"]:
            self.fitting = frozenset(_FEMALE_NAMES + _NEUTRAL_NAMES)
        elif genders == ["male"]:
            self.fitting = frozenset(_MALE_NAMES + _NEUTRAL_NAMES)

    def word(self) -> str | None:
        return self.words.pop() if self.words else None

    def person(self, fits: frozenset[str] | None = None) -> str | None:
        """A first name, one of ``fits`` when given (names that suit the question's pronouns)."""
        for index in range(len(self.people) - 1, -1, -1):
            if fits is None or self.people[index] in fits:
                return self.people.pop(index)
        return None

    def surname(self) -> str | None:
        return self.surnames.pop() if self.surnames else None


def _cased(word: str, like: str, whole: str) -> str:
    """``word`` written in the letter case of ``like`` (a part of the name ``whole``)."""
    letters = [c for c in whole if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:].lower()
    return word.lower()


def _extension(name: str) -> tuple[str, str]:
    """(stem, extension with its dot): ``notes.txt`` -> (``notes``, ``.txt``); a compressed
    file keeps both (``logs.tar.gz`` -> ``.tar.gz``)."""
    stem, extension = name, ""
    while True:
        head, dot, tail = stem.rpartition(".")
        if not (dot and head and tail.isalnum() and len(tail) <= 5 and not tail.isdigit()):
            return stem, extension
        if extension and extension.lstrip(".").lower() not in _COMPRESSED:
            return stem, extension
        stem, extension = head, f".{tail}{extension}"


def _shaped_parts(name: str, pools: _Pools) -> str | None:
    """Each word of ``name`` replaced by a pool word in its letter case; words are split at
    separators and camel-case humps; digits, single letters and separators stay
    (``meeting_notes`` -> ``ember_ridge``, ``FinalReport`` -> ``CedarAtlas``, ``q1_summary``
    -> ``q1_heron``, ``order_1042`` -> ``cedar_1042``)."""
    out = []
    for part in _SEPARATORS.split(name):
        if not part or _SEPARATORS.fullmatch(part):
            out.append(part)
            continue
        for hump in _HUMPS.findall(part):
            if not hump.isalpha() or len(hump) == 1:
                out.append(hump)
                continue
            word = pools.word()
            if word is None:
                return None
            out.append(_cased(word, hump, name))
    return "".join(out)


def _handle(name: str, first: str, pools: _Pools) -> str | None:
    """A user name shaped like ``name``: its first word becomes ``first``, longer later words
    pool words; initials (``dana_w``), digits (``user123``) and separators stay."""
    out = []
    for part in _SEPARATORS.split(name):
        if not part or _SEPARATORS.fullmatch(part):
            out.append(part)
            continue
        for hump in _HUMPS.findall(part):
            if not hump.isalpha() or (not first and len(hump) <= 2):
                out.append(hump)
                continue
            word = first or pools.word()
            first = ""
            if word is None:
                return None
            out.append(_cased(word, hump, name))
    return "".join(out)


def _new_name(candidate: Candidate, pools: _Pools) -> str | None:
    sigil, name = _split_sigil(candidate.value)
    kind = candidate.kind
    new: str | None
    if kind is Sem.PERSON_NAME:
        first, space, rest = name.partition(" ")
        person = pools.surname() if candidate.surname else pools.person(pools.fitting)
        new = None if person is None else f"{_cased(person, first, name)}{space}{rest}"
    elif kind is Sem.USER_NAME:
        person = pools.person()
        new = None if person is None else _handle(name, person.lower(), pools)
    elif kind is Sem.TITLE and " " in name.strip():
        words = name.split()
        fresh = [pools.word() for _ in range(min(len(words), _TITLE_WORDS))]
        if any(word is None for word in fresh):
            return None
        title_case = all(w[:1].isupper() for w in words if w[:1].isalpha())
        new = " ".join(
            _cased(str(word), words[0] if index == 0 or title_case else "x", name)
            for index, word in enumerate(fresh)
        )
    else:
        stem, extension = _extension(name) if kind is Sem.FILE_NAME else (name, "")
        shaped = _shaped_parts(stem, pools)
        new = None if shaped is None else f"{shaped}{extension}"
    if new is None or new == name or new.lower() in pools.taken:
        return None
    return f"{sigil}{new}"


# --- applying a renaming ---------------------------------------------------------------------


class _Renamer:
    """Replaces old names by new ones in values, keys and, as whole tokens, longer strings."""

    def __init__(self, mapping: dict[str, str], keep: set[str]) -> None:
        self.mapping = mapping
        self.keep = keep
        olds = sorted(mapping, key=len, reverse=True)
        self.pattern = re.compile(f"{_LEFT}(?:{'|'.join(map(re.escape, olds))}){_RIGHT}")

    def text(self, value: str) -> str:
        if value in self.mapping:
            return self.mapping[value]
        if value in self.keep:
            return value
        return self.pattern.sub(lambda match: self.mapping[match.group()], value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.text(str(key)): self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _apply(task: Task, chosen: dict[str, tuple[Candidate, str]]) -> tuple[Task, _Renamer]:
    """The renamed task, and the renamer that maps the old task's strings to the new ones."""
    mapping = {old: new for old, (_, new) in chosen.items()}
    question = task.question
    spans = sorted((span, new) for candidate, new in chosen.values() for span in candidate.spans)
    for (start, end), new in reversed(spans):
        question = question[:start] + new + question[end:]
    # values the question quotes stay as written, in the arguments and in the state
    keep = {
        text
        for text in _call_strings(task)
        if text not in mapping and _protected(task.question, [text])
    }
    renamer = _Renamer(mapping, keep)
    calls = [call.model_copy(update={"arguments": renamer(call.arguments)}) for call in task.calls]
    renamed = task.model_copy(
        update={
            "question": question,
            "initial_config": renamer(task.initial_config),
            "calls": calls,
        }
    )
    return renamed, renamer


def _literal_strings(task: Task) -> Iterator[tuple[tuple[str, str, int, int], str]]:
    """((step, argument, element, position), text) of each literal string in the arguments."""
    for call in task.calls:
        for name, value in call.arguments.items():
            if name in call.bindings:
                continue
            leaves = value if isinstance(value, list) else [value]
            for index, leaf in enumerate(leaves):
                if f"{name}.{index}" in call.bindings:
                    continue
                for position, text in enumerate(strings(leaf)):
                    yield (call.id, name, index, position), text


def _argument_strings(task: Task) -> Iterator[tuple[tuple[str, str, int], str]]:
    """((step, argument, position), text) of every string in the arguments, bound or not."""
    for call in task.calls:
        for name, value in call.arguments.items():
            for position, text in enumerate(strings(value)):
                yield (call.id, name, position), text


def _keeps_grounding(before: Task, after: Task) -> bool:
    """Every literal argument the question or the state stated before is still stated, and
    every argument the question spelt out exactly (which makes it no copied output) still is:
    'json' hidden in a renamed 'inventory_json' must not leave only "JSON" behind."""
    old_sources = Sources(before.question, before.initial_config)
    new_sources = Sources(after.question, after.initial_config)
    old = dict(_literal_strings(before))
    if not all(
        new_sources.grounds(text)
        for key, text in _literal_strings(after)
        if key in old and old_sources.grounds(old[key])
    ):
        return False
    spelt = dict(_argument_strings(before))
    return all(
        text in after.question
        for key, text in _argument_strings(after)
        if key in spelt and spelt[key] and spelt[key] in before.question
    )


_Run = tuple[list[tuple[bool, Any]], dict[str, dict[str, Any]]]


def _run(task: Task) -> _Run | None:
    """(whether each call succeeded, its result) and the final state; ``None`` when the initial
    state does not even load."""
    try:
        result = replay(task)
    except ValueError:
        return None
    return [(o.error is None, o.result) for o in result.outcomes], result.final_state


def _behaves_alike(before: _Run, after: Task, renamer: _Renamer) -> bool:
    """Whether the renamed calls do exactly what the old ones did, under the new names: each
    result and the final state are the old ones renamed (a search that no longer matches, an
    order that changes which item is first, a count of characters that changes, all differ)."""
    run = _run(after)
    if run is None:
        return False
    outcomes, final = run
    old_outcomes, old_final = before
    return (
        len(outcomes) == len(old_outcomes)
        and all(
            ok == old_ok and (not ok or result == renamer(old_result))
            for (ok, result), (old_ok, old_result) in zip(outcomes, old_outcomes)
        )
        and final == renamer(old_final)
    )


def _overlaps(candidate: Candidate, chosen: dict[str, tuple[Candidate, str]]) -> bool:
    """Whether ``candidate`` shares a token or a question span with a name already chosen."""
    for other, _ in chosen.values():
        if _token_pattern(other.value).search(candidate.value):
            return True
        if _token_pattern(candidate.value).search(other.value):
            return True
        if any(a < d and c < b for a, b in candidate.spans for c, d in other.spans):
            return True
    return False


def rename(task: Task, rng: random.Random, count: int = 2) -> Task | None:
    """A copy of ``task`` with up to ``count`` names replaced, or ``None`` when it has no name
    to rename (or no renaming keeps every stated value stated)."""
    found = candidates(task)
    if not found:
        return None
    before = _run(task)
    if before is None:
        return None
    pools = _Pools(task, rng)
    chosen: dict[str, tuple[Candidate, str]] = {}
    for candidate in rng.sample(found, len(found)):
        if len(chosen) >= count:
            break
        if _overlaps(candidate, chosen):
            continue
        new = _new_name(candidate, pools)
        if new is None:
            continue
        trial = {**chosen, candidate.value: (candidate, new)}
        renamed, renamer = _apply(task, trial)
        if _keeps_grounding(task, renamed) and _behaves_alike(before, renamed, renamer):
            chosen = trial
    if not chosen:
        return None
    renamed = _apply(task, chosen)[0]
    return task.derive(
        "rename",
        question=renamed.question,
        calls=renamed.calls,
        initial_config=renamed.initial_config,
    )
