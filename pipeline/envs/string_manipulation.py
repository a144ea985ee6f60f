"""String manipulation: case, split/join, replace, bounded regexes, padding, counts, slicing.

Most tools are pure functions of their arguments and return ``{"result": text}`` (or a list,
a count, an index), so one call's output is the next call's input. A small state of named text
buffers (a clipboard with slots) gives the environment writes: texts are saved, appended to and
edited there and read back later, which makes state dependencies between calls.

Regular expressions use the ``regex`` package with a timeout, and patterns are checked before
compiling: a bounded length, bounded counted repeats (``{n}``) and a bounded estimate of how far
nested counted repeats expand, because compiling ``(?:(?:a{1000}){1000}){1000}`` would take
minutes and gigabytes. A catastrophic pattern such as ``(a|aa)+$`` on ``'aaaa...b'`` ends in a
``ToolError`` after the timeout, never a hang.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

import regex  # type: ignore[import-untyped]
from pydantic import Field, JsonValue, field_validator

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

# Latency (seconds), modelled on a text-processing web API: plain string operations are one
# round trip (0.1); regular expressions are compiled and run with a time budget (0.25); the
# buffers live in a small key-value store (read 0.15, write 0.3, like a cache such as Redis
# behind an API).
_TEXT_OP = 0.1
_REGEX_OP = 0.25
_BUFFER_READ = 0.15
_BUFFER_WRITE = 0.3

_MAX_TEXT = 100_000  # characters of any input text
_MAX_OUTPUT = 200_000  # characters of any text a tool produces or stores
_MAX_PARTS = 10_000  # parts of a split or a join
_MAX_PATTERN = 500  # characters of a regular expression
_MAX_REPEAT = 1_000  # largest counted repeat {n} in a pattern
_MAX_PATTERN_WEIGHT = 200_000  # estimated size of a pattern with its counted repeats expanded
_REGEX_TIMEOUT = 0.5  # seconds per regular-expression operation
_MAX_MATCHES = 1_000  # matches listed by one search
_DEFAULT_MATCHES = 100
_MAX_BUFFERS = 50
_BUFFER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")

CaseMode = Literal[
    "upper", "lower", "title", "capitalize", "swapcase", "snake", "kebab", "camel", "pascal"
]
Side = Literal["left", "right", "both"]

# Words inside identifiers and phrases: "parseHTTPResponse 2 go" -> parse, HTTP, Response, 2, go
# (a fixed, linear pattern; Unicode letter classes so "naïve Über" stays two words)
_WORD = regex.compile(r"\p{Lu}+(?!\p{Ll})|\p{Lu}?\p{Ll}+|\p{N}+|\p{L}+")


def _check_text(text: str, what: str = "text") -> str:
    if len(text) > _MAX_TEXT:
        raise ToolError(f"{what} is too long ({len(text)} characters; at most {_MAX_TEXT})")
    return text


def _check_output(text: str) -> dict[str, JsonValue]:
    if len(text) > _MAX_OUTPUT:
        raise ToolError(f"the result would be too long (at most {_MAX_OUTPUT} characters)")
    return {"result": text}


def _words(text: str) -> list[str]:
    return [str(word) for word in _WORD.findall(text)]


def _change_case(text: str, mode: CaseMode) -> str:
    if mode == "upper":
        return text.upper()
    if mode == "lower":
        return text.lower()
    if mode == "swapcase":
        return text.swapcase()
    if mode == "capitalize":
        return text[:1].upper() + text[1:].lower()
    if mode == "title":
        # capitalise each whitespace-separated word; keep the spacing (str.title gives "It'S")
        return re.sub(r"\S+", lambda m: m.group()[:1].upper() + m.group()[1:].lower(), text)
    words = _words(text)
    if mode == "snake":
        return "_".join(word.lower() for word in words)
    if mode == "kebab":
        return "-".join(word.lower() for word in words)
    capitalised = [word[:1].upper() + word[1:].lower() for word in words]
    if mode == "pascal":
        return "".join(capitalised)
    return "".join([words[0].lower(), *capitalised[1:]]) if words else ""


# ----- regular expressions ----------------------------------------------------------------

_COUNTED_REPEAT = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
_BRACED_ESCAPES = frozenset("pPNxuUgk")


def _repeat_count(match: re.Match[str]) -> int | None:
    """The largest count a ``{m}``, ``{m,}``, ``{m,n}`` or ``{,n}`` quantifier asks for."""
    low, high = match.group(1), match.group(2)
    numbers = [int(part) for part in (low, high) if part]
    if not numbers:
        return None  # "{}" or "{,}" is a literal
    return max(numbers)


def _pattern_weight(pattern: str) -> int:
    """An upper estimate of the pattern's size with counted repeats expanded.

    Character classes are read as in regex's version 0 (they end at the first ``]``), which at
    worst shows braces of a version-1 nested set as quantifiers: the estimate only grows.
    """
    totals: list[int] = [0]  # weight of each open group so far
    last = 0  # weight of the item a quantifier would repeat
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            escaped = pattern[position + 1 : position + 2]
            position += 2
            if escaped in _BRACED_ESCAPES and pattern[position : position + 1] in ("{", "<"):
                closing = "}" if pattern[position] == "{" else ">"
                end = pattern.find(closing, position)
                position = len(pattern) if end < 0 else end + 1
            last = 1
            totals[-1] += 1
            continue
        if char == "[":
            end = position + 1
            if end < len(pattern) and pattern[end] == "^":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            position = end + 1
            last = 1
            totals[-1] += 1
            continue
        if char == "(":
            totals.append(0)
            position += 1
            continue
        if char == ")":
            inner = totals.pop() if len(totals) > 1 else 0
            last = max(1, inner)
            totals[-1] += last
            position += 1
            continue
        if char == "{":
            match = _COUNTED_REPEAT.match(pattern, position)
            count = _repeat_count(match) if match else None
            if match and count is not None:
                if count > _MAX_REPEAT:
                    raise ToolError(
                        f"the pattern repeats something {count} times; at most {_MAX_REPEAT}"
                    )
                totals[-1] += last * max(count - 1, 0)
                last *= max(count, 1)
                position = match.end()
                continue
        last = 1
        totals[-1] += 1
        position += 1
    return sum(totals)


def _compile(pattern: str, ignore_case: bool | None) -> Any:
    if not pattern:
        raise ToolError("the pattern is empty")
    if len(pattern) > _MAX_PATTERN:
        raise ToolError(
            f"the pattern is too long ({len(pattern)} characters; at most {_MAX_PATTERN})"
        )
    if _pattern_weight(pattern) > _MAX_PATTERN_WEIGHT:
        raise ToolError("the pattern's counted repeats expand too far; use smaller counts")
    flags = regex.IGNORECASE if ignore_case else 0
    try:
        return regex.compile(pattern, flags)
    except (regex.error, OverflowError, ValueError, IndexError) as error:
        raise ToolError(f"invalid regular expression {pattern!r}: {error}") from None


def _timed_out(pattern: str) -> ToolError:
    return ToolError(
        f"the pattern {pattern!r} took too long on this text (over {_REGEX_TIMEOUT} s); "
        "simplify it, for example avoid nested repetition such as (a+)+"
    )


class _TooLong(Exception):
    """Raised inside a replacement callback when the result grows past the limit."""


def _regex_sub(
    compiled: Any, pattern: str, replacement: str, text: str, count: int
) -> tuple[str, int]:
    produced = 0

    def expand(match: Any) -> str:
        nonlocal produced
        piece: str = match.expand(replacement)
        produced += len(piece) - (match.end() - match.start())
        if len(text) + produced > _MAX_OUTPUT:
            raise _TooLong
        return piece

    try:
        result, replaced = compiled.subn(expand, text, count=count, timeout=_REGEX_TIMEOUT)
    except TimeoutError:
        raise _timed_out(pattern) from None
    except _TooLong:
        raise ToolError(
            f"the result would be too long (at most {_MAX_OUTPUT} characters)"
        ) from None
    except (regex.error, IndexError) as error:
        raise ToolError(f"invalid replacement {replacement!r}: {error}") from None
    return str(result), int(replaced)


# ----- state ------------------------------------------------------------------------------


class StringManipulationState(EnvState):
    """Named text buffers (a clipboard with named slots): buffer name -> its text."""

    buffers: dict[str, str] = Field(default_factory=dict)

    @field_validator("buffers")
    @classmethod
    def _bounded(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > _MAX_BUFFERS:
            raise ValueError(f"at most {_MAX_BUFFERS} buffers")
        for name, text in value.items():
            if not _BUFFER_NAME.match(name):
                raise ValueError(f"invalid buffer name {reprlib.repr(name)}")
            if len(text) > _MAX_OUTPUT:
                raise ValueError(f"buffer {name!r} holds more than {_MAX_OUTPUT} characters")
        return value


class StringManipulation(Environment[StringManipulationState]):
    name = "string_manipulation"
    state_model = StringManipulationState

    # ----- helpers ----------------------------------------------------------------------
    def _buffer(self, name: str) -> str:
        if name not in self.state.buffers:
            known = ", ".join(sorted(self.state.buffers)) or "none"
            raise ToolError(f"no buffer named {reprlib.repr(name)} (buffers: {known})")
        return self.state.buffers[name]

    def _store(self, name: str, text: str) -> None:
        if not _BUFFER_NAME.match(name):
            raise ToolError(
                f"invalid buffer name {reprlib.repr(name)}: 1-64 letters, digits, spaces, '_', "
                "'.' or '-', starting with a letter or digit"
            )
        if len(text) > _MAX_OUTPUT:
            raise ToolError(f"a buffer holds at most {_MAX_OUTPUT} characters")
        if name not in self.state.buffers and len(self.state.buffers) >= _MAX_BUFFERS:
            raise ToolError(f"there are already {_MAX_BUFFERS} buffers; delete one first")
        self.state.buffers[name] = text

    # ----- case, split, join ------------------------------------------------------------
    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT})
    def change_case(
        self, text: Annotated[str, Sem.TEXT], mode: Annotated[CaseMode, Sem.OPTION]
    ) -> dict[str, JsonValue]:
        """Change the letter case or word style of a text.

        Args:
            text: The text to change.
            mode: 'upper', 'lower', 'title' (each word capitalised), 'capitalize' (first letter
                only), 'swapcase', or an identifier style built from the words of the text:
                'snake' (snake_case), 'kebab' (kebab-case), 'camel' (camelCase) or 'pascal'
                (PascalCase).
        """
        return _check_output(_change_case(_check_text(text), mode))

    @tool(ToolKind.READ, _TEXT_OP, returns={"parts.*": Sem.TEXT, "count": Sem.COUNT})
    def split_text(
        self,
        text: Annotated[str, Sem.TEXT],
        separator: Annotated[str | None, Sem.SEPARATOR] = None,
        max_parts: Annotated[int | None, Sem.COUNT] = None,
    ) -> dict[str, JsonValue]:
        """Split a text into parts at a separator.

        Args:
            text: The text to split.
            separator: The separator; leave it out to split at runs of whitespace (dropping
                empty parts).
            max_parts: The largest number of parts; the last part keeps the rest of the text.
        """
        _check_text(text)
        if separator == "":
            raise ToolError("the separator is empty; leave it out to split at whitespace")
        if max_parts is not None and not 1 <= max_parts <= _MAX_PARTS:
            raise ToolError(f"max_parts must be between 1 and {_MAX_PARTS}")
        limit = -1 if max_parts is None else max_parts - 1
        parts = text.split(separator, limit)
        if len(parts) > _MAX_PARTS:
            raise ToolError(f"the text splits into {len(parts)} parts; at most {_MAX_PARTS}")
        return {"parts": list(parts), "count": len(parts)}

    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT})
    def join_parts(
        self,
        parts: Annotated[list[str], Sem.TEXT],
        separator: Annotated[str, Sem.SEPARATOR],
    ) -> dict[str, JsonValue]:
        """Join a list of texts into one, with a separator between them.

        Args:
            parts: The texts to join, in order.
            separator: What to put between two parts (may be empty).
        """
        if len(parts) > _MAX_PARTS:
            raise ToolError(f"at most {_MAX_PARTS} parts can be joined")
        size = sum(len(part) for part in parts) + len(separator) * max(len(parts) - 1, 0)
        if size > _MAX_OUTPUT:
            raise ToolError(f"the result would be too long (at most {_MAX_OUTPUT} characters)")
        return {"result": separator.join(parts)}

    # ----- replacing and searching ------------------------------------------------------
    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT, "replacements": Sem.COUNT})
    def replace_text(
        self,
        text: Annotated[str, Sem.TEXT],
        old: Annotated[str, Sem.KEYWORD],
        new: Annotated[str, Sem.TEXT],
        count: Annotated[int | None, Sem.COUNT] = None,
    ) -> dict[str, JsonValue]:
        """Replace occurrences of a substring (plain text, no patterns).

        Args:
            text: The text to change.
            old: The substring to look for (case-sensitive).
            new: What to put in its place (may be empty to delete it).
            count: Replace only the first this many occurrences; all when left out.
        """
        _check_text(text)
        _check_text(old, "old")
        _check_text(new, "new")
        if not old:
            raise ToolError("the substring to replace is empty")
        if count is not None and count < 1:
            raise ToolError("count must be at least 1")
        if count is not None and count > len(text) + 1:
            count = None  # more replacements than the text has places: all of them
        found = text.count(old)
        replaced = found if count is None else min(found, count)
        if len(text) + replaced * (len(new) - len(old)) > _MAX_OUTPUT:
            raise ToolError(f"the result would be too long (at most {_MAX_OUTPUT} characters)")
        result = text.replace(old, new, replaced)  # a count past the matches is all of them
        return {"result": result, "replacements": replaced}

    @tool(
        ToolKind.READ,
        _REGEX_OP,
        returns={"matches.*": Sem.TEXT, "count": Sem.COUNT, "groups.*.*": Sem.TEXT},
    )
    def regex_find(
        self,
        text: Annotated[str, Sem.TEXT],
        pattern: Annotated[str, Sem.PATTERN],
        ignore_case: Annotated[bool | None, Sem.FLAG] = None,
        max_matches: Annotated[int | None, Sem.COUNT] = None,
    ) -> dict[str, JsonValue]:
        """Find the matches of a regular expression in a text.

        Args:
            text: The text to search.
            pattern: The regular expression (Python syntax, at most 500 characters).
            ignore_case: Whether to match letters regardless of case (default no).
            max_matches: How many matches to list (default 100, at most 1000); all are counted.
        """
        _check_text(text)
        limit = _DEFAULT_MATCHES if max_matches is None else max_matches
        if not 1 <= limit <= _MAX_MATCHES:
            raise ToolError(f"max_matches must be between 1 and {_MAX_MATCHES}")
        compiled = _compile(pattern, ignore_case)
        matches: list[JsonValue] = []
        captures: list[JsonValue] = []
        total = 0
        try:
            for match in compiled.finditer(text, timeout=_REGEX_TIMEOUT):
                total += 1
                if len(matches) < limit:
                    matches.append(str(match.group()))
                    if compiled.groups:
                        captures.append(list(match.groups()))
        except TimeoutError:
            raise _timed_out(pattern) from None
        found: dict[str, JsonValue] = {"matches": matches, "count": total}
        if compiled.groups:
            found["groups"] = captures
        return found

    @tool(ToolKind.READ, _REGEX_OP, returns={"result": Sem.TEXT, "replacements": Sem.COUNT})
    def regex_replace(
        self,
        text: Annotated[str, Sem.TEXT],
        pattern: Annotated[str, Sem.PATTERN],
        replacement: Annotated[str, Sem.TEXT],
        count: Annotated[int | None, Sem.COUNT] = None,
        ignore_case: Annotated[bool | None, Sem.FLAG] = None,
    ) -> dict[str, JsonValue]:
        """Replace the matches of a regular expression.

        Args:
            text: The text to change.
            pattern: The regular expression (Python syntax, at most 500 characters).
            replacement: The replacement; \\1 or \\g<name> insert a captured group.
            count: Replace only the first this many matches; all when left out.
            ignore_case: Whether to match letters regardless of case (default no).
        """
        _check_text(text)
        _check_text(replacement, "replacement")
        if count is not None and count < 1:
            raise ToolError("count must be at least 1")
        if count is not None and count > len(text) + 1:
            count = None  # more replacements than the text has places: all of them
        compiled = _compile(pattern, ignore_case)
        result, replaced = _regex_sub(compiled, pattern, replacement, text, count or 0)
        return {"result": result, "replacements": replaced}

    @tool(ToolKind.READ, _TEXT_OP, returns={"found": Sem.FLAG, "index": Sem.INDEX})
    def find_substring(
        self,
        text: Annotated[str, Sem.TEXT],
        substring: Annotated[str, Sem.KEYWORD],
        occurrence: Annotated[int | None, Sem.INDEX] = None,
    ) -> dict[str, JsonValue]:
        """Find where a substring occurs in a text (0-based character index).

        Args:
            text: The text to search.
            substring: The substring to look for (case-sensitive).
            occurrence: Which occurrence to find, 1 for the first (default), -1 for the last.
        """
        _check_text(text)
        if not substring:
            raise ToolError("the substring is empty")
        which = 1 if occurrence is None else occurrence
        if which == 0:
            raise ToolError("occurrence counts from 1 (or from -1 for the last)")
        index = -1
        if which < 0:
            end = len(text)
            for _ in range(-which):
                index = text.rfind(substring, 0, end)
                if index < 0:
                    break
                end = index + len(substring) - 1
        else:
            start = 0
            for _ in range(which):
                index = text.find(substring, start)
                if index < 0:
                    break
                start = index + 1
        if index < 0:
            return {"found": False, "index": None}
        return {"found": True, "index": index}

    # ----- shaping ----------------------------------------------------------------------
    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT})
    def pad_text(
        self,
        text: Annotated[str, Sem.TEXT],
        width: Annotated[int, Sem.SIZE_BYTES],
        side: Annotated[Side | None, Sem.OPTION] = None,
        fill_char: Annotated[str | None, Sem.SEPARATOR] = None,
    ) -> dict[str, JsonValue]:
        """Pad a text with a fill character up to a width; longer texts stay as they are.

        Args:
            text: The text to pad.
            width: The length the result should have, in characters.
            side: Where to add the fill: 'right' (default), 'left' or 'both' (centred).
            fill_char: The single character to pad with (default a space).
        """
        _check_text(text)
        fill = " " if fill_char is None else fill_char
        if len(fill) != 1:
            raise ToolError("fill_char must be exactly one character")
        if not 0 <= width <= _MAX_TEXT:
            raise ToolError(f"width must be between 0 and {_MAX_TEXT}")
        where = side or "right"
        if where == "left":
            return {"result": text.rjust(width, fill)}
        if where == "both":
            return {"result": text.center(width, fill)}
        return {"result": text.ljust(width, fill)}

    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT})
    def trim_text(
        self,
        text: Annotated[str, Sem.TEXT],
        side: Annotated[Side | None, Sem.OPTION] = None,
        characters: Annotated[str | None, Sem.SEPARATOR] = None,
    ) -> dict[str, JsonValue]:
        """Remove whitespace (or given characters) from the ends of a text.

        Args:
            text: The text to trim.
            side: Which end to trim: 'both' (default), 'left' or 'right'.
            characters: The set of characters to remove; whitespace when left out.
        """
        _check_text(text)
        if characters == "":
            raise ToolError("characters is empty; leave it out to trim whitespace")
        where = side or "both"
        if where == "left":
            return {"result": text.lstrip(characters)}
        if where == "right":
            return {"result": text.rstrip(characters)}
        return {"result": text.strip(characters)}

    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT})
    def slice_text(
        self,
        text: Annotated[str, Sem.TEXT],
        start: Annotated[int, Sem.INDEX],
        end: Annotated[int | None, Sem.INDEX] = None,
    ) -> dict[str, JsonValue]:
        """Take the part of a text between two character positions (0-based, end excluded).

        Args:
            text: The text to cut from.
            start: Index of the first character to keep; negative counts from the end.
            end: Index just past the last character to keep; the end of the text when left
                out; negative counts from the end.
        """
        _check_text(text)
        return {"result": text[start:end]}

    @tool(ToolKind.READ, _TEXT_OP, returns={"result": Sem.TEXT})
    def reverse_text(
        self,
        text: Annotated[str, Sem.TEXT],
        unit: Annotated[Literal["characters", "words"] | None, Sem.OPTION] = None,
    ) -> dict[str, JsonValue]:
        """Reverse a text, character by character or word by word.

        Args:
            text: The text to reverse.
            unit: 'characters' (default) or 'words' (word order reversed, joined by single
                spaces).
        """
        _check_text(text)
        if unit == "words":
            return {"result": " ".join(reversed(text.split()))}
        return {"result": text[::-1]}

    @tool(ToolKind.READ, _TEXT_OP, returns={"count": Sem.COUNT})
    def count_text(
        self,
        text: Annotated[str, Sem.TEXT],
        unit: Annotated[Literal["characters", "words", "lines", "occurrences"], Sem.OPTION],
        substring: Annotated[str | None, Sem.KEYWORD] = None,
    ) -> dict[str, JsonValue]:
        """Count the characters, words, lines or occurrences of a substring in a text.

        Args:
            text: The text to count in.
            unit: What to count: 'characters', 'words' (runs of non-whitespace), 'lines' or
                'occurrences' (non-overlapping, case-sensitive, of substring).
            substring: The substring whose occurrences to count; only with 'occurrences'.
        """
        _check_text(text)
        if unit == "occurrences":
            if not substring:
                raise ToolError("counting occurrences needs a non-empty substring")
            return {"count": text.count(substring)}
        if substring is not None:
            raise ToolError("a substring is only used when counting occurrences")
        counters: dict[str, Callable[[str], int]] = {
            "characters": len,
            "words": lambda t: len(t.split()),
            "lines": lambda t: len(t.splitlines()),
        }
        return {"count": counters[unit](text)}

    # ----- buffers ----------------------------------------------------------------------
    @tool(ToolKind.WRITE, _BUFFER_WRITE, returns={"length": Sem.SIZE_BYTES})
    def save_buffer(
        self, name: Annotated[str, Sem.BUFFER_ID], text: Annotated[str, Sem.TEXT]
    ) -> dict[str, JsonValue]:
        """Save a text in a named buffer, replacing what the buffer held.

        Args:
            name: The buffer's name (1-64 letters, digits, spaces, '_', '.' or '-').
            text: The text to keep.
        """
        self._store(name, text)
        return {"length": len(text)}

    @tool(ToolKind.WRITE, _BUFFER_WRITE, returns={"length": Sem.SIZE_BYTES})
    def append_to_buffer(
        self,
        name: Annotated[str, Sem.BUFFER_ID],
        text: Annotated[str, Sem.TEXT],
        separator: Annotated[str | None, Sem.SEPARATOR] = None,
    ) -> dict[str, JsonValue]:
        """Append a text to the end of an existing buffer.

        Args:
            name: The buffer to append to; it must exist.
            text: The text to append.
            separator: What to put between the old content and the new text (default nothing).
        """
        current = self._buffer(name)
        combined = current + (separator or "") + text
        self._store(name, combined)
        return {"length": len(combined)}

    @tool(
        ToolKind.WRITE,
        _BUFFER_WRITE,
        returns={"replacements": Sem.COUNT, "length": Sem.SIZE_BYTES},
    )
    def replace_in_buffer(
        self,
        name: Annotated[str, Sem.BUFFER_ID],
        old: Annotated[str, Sem.KEYWORD],
        new: Annotated[str, Sem.TEXT],
    ) -> dict[str, JsonValue]:
        """Replace every occurrence of a substring inside a buffer, in place.

        Args:
            name: The buffer to edit; it must exist.
            old: The substring to look for (case-sensitive); it must occur in the buffer.
            new: What to put in its place (may be empty to delete it).
        """
        current = self._buffer(name)
        if not old:
            raise ToolError("the substring to replace is empty")
        found = current.count(old)
        if not found:
            raise ToolError(f"{reprlib.repr(old)} does not occur in buffer {name!r}")
        if len(current) + found * (len(new) - len(old)) > _MAX_OUTPUT:
            raise ToolError(f"a buffer holds at most {_MAX_OUTPUT} characters")
        self._store(name, current.replace(old, new))
        return {"replacements": found, "length": len(self.state.buffers[name])}

    @tool(ToolKind.READ, _BUFFER_READ, returns={"text": Sem.TEXT})
    def read_buffer(self, name: Annotated[str, Sem.BUFFER_ID]) -> dict[str, JsonValue]:
        """Read the text held in a buffer.

        Args:
            name: The buffer to read.
        """
        return {"text": self._buffer(name)}

    @tool(ToolKind.READ, _BUFFER_READ, returns={"names.*": Sem.BUFFER_ID})
    def list_buffers(self) -> dict[str, JsonValue]:
        """List the names of the buffers, in alphabetical order."""
        return {"names": list(sorted(self.state.buffers))}

    @tool(ToolKind.WRITE, _BUFFER_WRITE, returns={"deleted": Sem.FLAG})
    def delete_buffer(self, name: Annotated[str, Sem.BUFFER_ID]) -> dict[str, JsonValue]:
        """Delete a buffer and its text.

        Args:
            name: The buffer to delete; it must exist.
        """
        self._buffer(name)
        del self.state.buffers[name]
        return {"deleted": True}
