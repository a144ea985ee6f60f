"""What the judge copies out of a task, and the checks in code that turn it into findings.

A small model asked "is this task valid?" says yes to everything (Qwen2.5-Coder-1.5B answered
"yes" to all seven rubric questions for 34 of 34 labelled tasks). Asked instead to *copy out*
what it sees — the words of the request that ask for each call, references to things never
named, values nobody gave — it does extraction, which small models do far better, and code
decides. Every finding must point at something real: a quote is kept only when it is in the
request, a value only when a call passes it and neither the request nor a result shows it, a
call id only when the task has it. A list the model fills with invented text finds nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from pipeline.models import Task

#: the longest quote or value the checks read: a longer one is not a quote of a request part
MAX_QUOTE_CHARS = 300
#: share of a loose quote's words the request must have (the model drops or adds a word)
LOOSE_QUOTE_SHARE = 0.8
NONE_WORDS = frozenset({"", "none", "nothing", "no", "n a", "na", "null", "no call", "no words"})


class AskedPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    words: str  # one thing the request asks, copied from it
    call: str  # the id of the call that does it, or "none"


class CallAsk(BaseModel):
    model_config = ConfigDict(extra="ignore")

    call: str
    asked_by: str  # the request's words that ask for the call, or "none"


class WrongWait(BaseModel):
    model_config = ConfigDict(extra="ignore")

    call: str
    why: str


class JudgeAnswer(BaseModel):
    """The judge's reply: the mapping between request and calls first (the work a reader does
    before any verdict), then one list per kind of problem, empty when there is none."""

    model_config = ConfigDict(extra="ignore")

    asked: list[AskedPart] = Field(default_factory=list)
    calls: list[CallAsk] = Field(default_factory=list)
    unexplained_references: list[str] = Field(default_factory=list)
    odd_wording: list[str] = Field(default_factory=list)
    misused_values: list[str] = Field(default_factory=list)
    open_choices: list[str] = Field(default_factory=list)
    unsourced_values: list[str] = Field(default_factory=list)
    wrong_waits: list[WrongWait] = Field(default_factory=list)


def normalised(text: str) -> str:
    """Lower case, punctuation and quotes as spaces: how a copied quote is compared."""
    return " ".join(re.sub(r"[^\w@#]+", " ", text.lower()).split())


def is_none(text: str) -> bool:
    return normalised(text) in NONE_WORDS


def quoted(quote: str, text: str) -> bool:
    """Whether ``quote`` is copied from ``text``: word for word, or with few words changed."""
    words = normalised(quote[:MAX_QUOTE_CHARS])
    if not words or words in NONE_WORDS:
        return False
    haystack = normalised(text)
    if f" {words} " in f" {haystack} ":
        return True
    wanted = words.split()
    present = set(haystack.split())
    return len(wanted) >= 3 and sum(w in present for w in wanted) >= LOOSE_QUOTE_SHARE * len(wanted)


def _argument_strings(value: object) -> list[str]:
    """Every scalar an argument holds, as text (lists and objects walked)."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in _argument_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _argument_strings(item)]
    return [] if value is None else [str(value)]


def _label(task: Task, call_id: str) -> str:
    call = next(c for c in task.calls if c.id == call_id)
    return f"{call.id} ({call.function})"


Check = Callable[[Task, JudgeAnswer, list[str]], list[str]]


def mismatch(task: Task, answer: JudgeAnswer, results: list[str]) -> list[str]:
    """A call no words ask for, or a part of the request no call does."""
    ids = {call.id for call in task.calls}
    found = [
        f"{_label(task, ask.call)} is asked for by no words of the request"
        for ask in answer.calls
        if ask.call in ids and is_none(ask.asked_by)
    ]
    found += [
        f"the request asks {part.words.strip()!r} and no call does it"
        for part in answer.asked
        if is_none(part.call) and quoted(part.words, task.question)
    ]
    return found


def _quotes_in_request(field: str) -> Check:
    def check(task: Task, answer: JudgeAnswer, results: list[str]) -> list[str]:
        quotes: list[str] = getattr(answer, field)
        return [f"{q.strip()!r} in the request" for q in quotes if quoted(q, task.question)]

    return check


def misused(task: Task, answer: JudgeAnswer, results: list[str]) -> list[str]:
    """A value used for what it cannot mean: it must be in the request or a call's arguments."""
    arguments = json.dumps([call.arguments for call in task.calls], ensure_ascii=False)
    return [
        f"{value.strip()!r} used for what it cannot mean"
        for value in answer.misused_values
        if quoted(value, task.question) or quoted(value, arguments)
    ]


def unsourced(task: Task, answer: JudgeAnswer, results: list[str]) -> list[str]:
    """A value a call passes that neither the request nor any result shows."""
    passed = {
        normalised(text): text
        for call in task.calls
        for text in _argument_strings(call.arguments)
        if normalised(text)
    }
    seen = " ".join([task.question, *results])
    found = []
    for value in answer.unsourced_values:
        key = normalised(value[:MAX_QUOTE_CHARS])
        if key in passed and f" {key} " not in f" {normalised(seen)} ":
            found.append(f"{passed[key]!r} is passed and neither the request nor a result has it")
    return found


def wrong_waits(task: Task, answer: JudgeAnswer, results: list[str]) -> list[str]:
    """A call said to wait wrongly: it must exist and have an earlier call to wait for."""
    later = {call.id for call in task.calls[1:]}
    return [
        f"{_label(task, wait.call)}: {wait.why.strip()[:MAX_QUOTE_CHARS]}"
        for wait in answer.wrong_waits
        if wait.call in later and not is_none(wait.why)
    ]


#: rubric label -> (the answer's list that finds it, the check in code that confirms it)
CHECKS: dict[str, tuple[str, Check]] = {
    "nonsensical": ("misused_values", misused),
    "unnatural-language": ("odd_wording", _quotes_in_request("odd_wording")),
    "context-dependent": ("unexplained_references", _quotes_in_request("unexplained_references")),
    "under-specified": ("open_choices", _quotes_in_request("open_choices")),
    "ungrounded": ("unsourced_values", unsourced),
    "mismatch": ("asked, calls", mismatch),
    "wrong-dependency": ("wrong_waits", wrong_waits),
}


def findings(task: Task, answer: JudgeAnswer, results: list[str]) -> dict[str, list[str]]:
    """What the checks confirm of the judge's lists, per rubric label (empty: nothing found).
    ``results`` are the calls' results as the prompt showed them."""
    return {label: check(task, answer, results) for label, (_, check) in CHECKS.items()}
