"""What an LLM operator's candidate must add to its parent (the ``evolve.*`` rejections).

A candidate that passed validation is a correct task, but not necessarily a new one. These
checks compare it with its parent and with the siblings already accepted from that parent, on
the calls (never on the model's description of them):

- ``evolve.near_copy``: the same calls (tools and arguments; ids and inferred dependencies
  ignored) as the parent or an accepted sibling, and a question that differs from that task's
  by at most :data:`NEAR_COPY_WORDS` words or is :data:`NEAR_COPY_RATIO` similar word by word;
- ``evolve.not_deeper`` (deepen): no more calls than the parent, or none of the calls it adds
  takes a value from a result of the parent's calls (a binding, a value passed on rounded) or
  runs only because of one (a condition in the question), directly or through another added
  call that does;
- ``evolve.same_goal`` (broaden): the same set of tools as the parent and the same final state;
- ``evolve.literal_changed`` (paraphrase): a value the parent's question wrote out and a call
  passes is missing from the new question, or written differently — case included
  (``maya_codes`` is not ``Maya_codes``); numbers may change only their spelling ("two", "2");
- ``evolve.order_changed`` (paraphrase): the new question presents its steps as a sequence
  ("first", "then", "finally") and names two calls, the later depending on the earlier, in the
  other order than the parent's question named them, or names the later only in a step
  before the earlier's ("Show the status and then ... press the pedal");
- ``evolve.step_unasked`` (paraphrase): a call the parent's request asked for by a word of its
  tool ("summarise") that the new question no longer names, or names only inside a purpose it
  opens with ("To find the distance ..., please provide the zip codes");
- ``evolve.meaning_changed`` (paraphrase): the parent speaks as the user ("my card") and the
  new question adds a "your", speaking as the assistant ("register your card"); or it adds a
  reason the parent never gave ("Since the marathon has already been run, ..."); or it gives a
  stated value as another field of its call ("with the title 'X'" for the description 'X').
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from difflib import SequenceMatcher
from typing import Any

from pipeline.conditions import all_mentions, control_edges, literals_of, name_words
from pipeline.dependencies import ValueFlows
from pipeline.envs import ToolKind, resolve_tool
from pipeline.evolve.clauses import GLUE_WORDS, clause_openers
from pipeline.evolve.options import GENERIC_NAME_WORDS, stems, tool_words
from pipeline.jsontree import scalars
from pipeline.models import Evidence, Rejection, RejectionCode, Stage, Task, canonical_json
from pipeline.replay import trace_calls
from pipeline.semantics import Sem
from pipeline.validate.grounding import numbers_in, token_in
from pipeline.validate.question import QuestionText

NEAR_COPY_WORDS = 4
NEAR_COPY_RATIO = 0.85
#: words in a row a new request may share with a worked example (and not with its parent)
COPIED_WORDS = 6
_WORD = re.compile(r"\w+(?:['.@#/-]\w+)*")


# --- comparing tasks ---------------------------------------------------------------------------


def call_signatures(task: Task) -> list[tuple[str, str]]:
    """The calls as (tool, arguments): what a task does, without ids or dependencies."""
    return [(call.tool, canonical_json(call.arguments)) for call in task.calls]


def words(question: str) -> list[str]:
    return _WORD.findall(question.lower())


def changed_words(old: str, new: str) -> tuple[int, float]:
    """How many words of the longer question have no counterpart in the other (in order),
    and the word-level similarity ratio."""
    before, after = words(old), words(new)
    matcher = SequenceMatcher(None, before, after, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return max(len(before), len(after)) - matched, matcher.ratio()


def near_copy(original: Task, candidate: Task) -> tuple[int, float] | None:
    """``(changed words, ratio)`` when ``candidate`` repeats ``original``, else None."""
    if call_signatures(original) != call_signatures(candidate):
        return None
    changed, ratio = changed_words(original.question, candidate.question)
    if changed <= NEAR_COPY_WORDS or ratio >= NEAR_COPY_RATIO:
        return changed, ratio
    return None


# --- deepen: an added call that needs an earlier result ------------------------------------------


def added_calls(parent: Task, child: Task) -> list[int]:
    """Indices of the child's calls that the parent does not make (as a multiset)."""
    remaining = Counter(call_signatures(parent))
    added = []
    for index, signature in enumerate(call_signatures(child)):
        if remaining[signature]:
            remaining[signature] -= 1
        else:
            added.append(index)
    return added


def result_sources(task: Task) -> list[set[int]]:
    """Per call, the earlier calls whose results it uses: takes a value from (a binding, a
    value passed on rounded) or runs because of (a condition in the question).

    A state dependency alone (a post after a login) does not count: any call of a logged-in
    session has one, so it says nothing about using what an earlier call found out.
    """
    steps, _ = trace_calls(task.envs, task.initial_config, task.calls)
    rounded = ValueFlows(task.calls, [step.result for step in steps], task.question)
    sources = [
        _steps_read(task, call.bindings.values()) | passed
        for call, passed in zip(task.calls, rounded.rounded_sources())
    ]
    for read, conditioned in control_edges(task.question, task.calls):
        sources[conditioned].add(read)
    return sources


def _steps_read(task: Task, bindings: Iterable[str]) -> set[int]:
    """The calls binding sources (``s2.result``, ``s3.values.1``) read; ids may hold dots, so
    the longest id a source starts with is the one it names."""
    found = set()
    for source in bindings:
        named = [
            (len(call.id), position)
            for position, call in enumerate(task.calls)
            if source == call.id or source.startswith(call.id + ".")
        ]
        if named:
            found.add(max(named)[1])
    return found


def builds_on_parent(parent: Task, child: Task) -> list[int]:
    """The added calls that use a result of the parent's calls, directly or through another
    added call that does: an added chain of its own (a new sequence and its summary) is a
    second task appended, not a deeper one."""
    added = added_calls(parent, child)
    sources = result_sources(child)
    building: set[int] = set()
    for position in added:  # in call order, so a chain is followed forwards
        if any(source not in added or source in building for source in sources[position]):
            building.add(position)
    return sorted(building)


def _not_deeper(parent: Task, child: Task) -> str | None:
    if len(child.calls) <= len(parent.calls):
        return (
            f"deepen made {len(child.calls)} calls, the parent {len(parent.calls)}: a deeper"
            " task adds at least one call"
        )
    if builds_on_parent(parent, child):
        return None
    added = added_calls(parent, child)
    steps = ", ".join(child.calls[index].id for index in added)
    return (
        f"deepen added {steps}, but no added call uses a value one of the parent's calls"
        " returned (a binding, a rounded value, a condition in the question), directly or"
        " through another added call"
    )


# --- broaden: another goal -----------------------------------------------------------------------


def _same_goal(parent: Task, child: Task) -> str | None:
    tools = {call.tool for call in child.calls}
    if tools != {call.tool for call in parent.calls}:
        return None
    if parent.expected is None or child.expected is None:
        return None  # unvalidated: nothing to compare the end states by
    if parent.expected.state_digest != child.expected.state_digest:
        return None
    return (
        f"broaden uses the parent's tools ({', '.join(sorted(tools))}) and ends in the same"
        " state: another goal needs another tool or another end state"
    )


# --- paraphrase: every literal kept exactly ---------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def stated_literals(task: Task) -> list[tuple[str, float | None]]:
    """The calls' literal values that the question writes out, each once: ``(text, number)``,
    with ``number`` set for numeric arguments (which may be respelt, "2" as "two")."""
    found: dict[str, float | None] = {}
    numbers = numbers_in(task.question)
    for call in task.calls:
        bound = {slot.split(".", 1)[0] for slot in call.bindings}
        for name, value in call.arguments.items():
            if name in bound:
                continue  # taken from a result: the question does not state it
            for leaf in scalars(value):
                number = _number(leaf)
                if number is not None and number in numbers:
                    found.setdefault(_number_text(leaf), number)
                elif isinstance(leaf, str) and leaf.strip() and token_in(leaf, task.question):
                    found.setdefault(leaf, None)
    return list(found.items())


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def lost_literals(parent: Task, question: str) -> list[str]:
    """What of the parent's stated literals ``question`` drops or writes differently."""
    numbers = numbers_in(question)
    lost = []
    for text, number in stated_literals(parent):
        if number is not None:
            if number not in numbers:
                lost.append(text)
        elif not token_in(text, question):
            # the whole word it sits in: 'upper' kept only inside 'uppercase' is not kept
            respelt = re.search(rf"\w*{re.escape(text)}\w*", question, re.IGNORECASE)
            if respelt is None:
                lost.append(repr(text))
            elif respelt.group().lower() == text.lower():
                lost.append(f"{text!r} (written {respelt.group()!r})")
            else:
                lost.append(f"{text!r} (only inside {respelt.group()!r})")
    return lost


def literal_changed(parent: Task, child: Task) -> str | None:
    lost = lost_literals(parent, child.question)
    if not lost:
        return None
    return (
        "the paraphrase must keep every value the request states, exactly (case included);"
        f" missing or changed: {', '.join(lost[:6])}"
    )


def _token_count(needle: str, haystack: str) -> int:
    """How often ``needle`` occurs in ``haystack`` not glued to further word characters."""
    return sum(
        1
        for match in re.finditer(re.escape(needle), haystack)
        if not re.match(r"\w", haystack[match.end() : match.end() + 1])
        and not re.match(r"\w", haystack[max(match.start() - 1, 0) : match.start()] or " ")
    )


def role_merged(parent: Task, child: Task) -> str | None:
    """A stated text that fills arguments of several names, written at fewer places than the
    parent wrote it and than it has roles, or ``None``: "I'm Priya Raman ... cardholder Priya
    Raman" reworded with the name once, as the cardholder's (both llm103 readers), no longer
    says who logs in. One text in several calls of one argument ("send 'hi' to Bob and to
    Ann") may be merged."""
    roles: dict[str, set[str]] = {}
    for text, number in stated_literals(parent):
        if number is not None or len(text.strip()) < 3:
            continue
        for call in parent.calls:
            bound = {slot.split(".", 1)[0] for slot in call.bindings}
            for name, value in call.arguments.items():
                if name not in bound and any(
                    isinstance(leaf, str) and token_in(text, leaf) for leaf in scalars(value)
                ):
                    roles.setdefault(text, set()).add(name)
    for text, names in roles.items():
        wanted = min(len(names), _token_count(text, parent.question))
        if wanted > 1 and _token_count(text, child.question) < wanted:
            return (
                f"the paraphrase writes {text!r} fewer times than the roles it fills"
                f" ({', '.join(sorted(names))}) and its parent wrote it"
            )
    return None


#: words that present the steps as a sequence a reader follows
_SEQUENCE = re.compile(r"\b(?:then|first|next|afterwards|after that|finally)\b", re.IGNORECASE)


_CLAUSE_OPENER = re.compile(r"(?:^|[,;.]\s+)([A-Za-z]+)")


def _reads_as_sequence(task: Task) -> bool:
    """Whether the question lists steps in an order: a sequence word, or clauses after commas
    that open on a call's verb ("Show me the doors, lock the driver door, turn on the
    headlights": the 1.5B model's paraphrase of an unlock-then-show request)."""
    if _SEQUENCE.search(task.question):
        return True
    from pipeline.envs import resolve_tool  # the environments import this module's users

    verbs: set[str] = set()
    for call in task.calls:
        description = resolve_tool(call.tool)[1].description
        verbs.update(word.lower()[:5] for word in re.findall(r"[A-Za-z]+", description)[:1])
        verbs.update(part.lower()[:5] for part in re.findall(r"[a-z]+|[A-Z][a-z]*", call.tool))
    openers = [word.lower()[:5] for word in _CLAUSE_OPENER.findall(task.question)[1:]]
    return any(opener in verbs for opener in openers)


def _first_named(task: Task) -> list[int | None]:
    """Where the question first names each call (a literal or a word of its tool's name)."""
    found: list[int | None] = []
    for call in task.calls:
        spots = all_mentions(call, task.question)
        found.append(min(spots) if spots else None)
    return found


_STEP_WORD = re.compile(r"\b(?:then|next|afterwards|after that|finally)\b", re.IGNORECASE)


def _step_of_own_value(task: Task, i: int, j: int) -> int | None:
    """How many step words ("then", "finally") come before the first value call ``i`` takes
    and call ``j`` does not, as the question writes it; ``None`` without such a value."""
    theirs = set(literals_of(task.calls[j]))
    spots = [
        task.question.find(value)
        for value in literals_of(task.calls[i])
        if value not in theirs and value in task.question
    ]
    if not spots:
        return None
    return len(_STEP_WORD.findall(task.question[: min(spots)]))


def order_changed(parent: Task, child: Task) -> str | None:
    """A paraphrase that names two calls in the other order than its parent did, where the
    second depends on the first ("open 'settings', then set font.size" rewritten as "set
    font.size in 'settings' after opening it" is fine; "set font.size, then open 'settings'"
    tells a reader to do them the wrong way round)."""
    if not _reads_as_sequence(child):
        return None  # "round what you get when converting ..." nests, it does not order
    before, after = _first_named(parent), _first_named(child)
    position = {call.id: index for index, call in enumerate(child.calls)}
    for j, call in enumerate(child.calls):
        for parent_id in call.depends_on:
            i = position[parent_id]
            a, b, c, d = before[i], before[j], after[i], after[j]
            if a == b or c == d:
                # both first named by one word ("comment" and "comments" share their stem):
                # a value only the earlier call takes must not move to a later step
                was, now = _step_of_own_value(parent, i, j), _step_of_own_value(child, i, j)
                if was is not None and now is not None and now > was:
                    return _order_message(child, i, j)
                continue
            if None in (a, b, c, d):
                continue
            if (a < b) != (c < d):  # type: ignore[operator]
                return _order_message(child, i, j)
            # the first names can agree where the parent names a later call's object early
            # ("In my document 'settings', set ...; then open the document"): a call every
            # own mention of which moved before its dependency's is named the other way round
            # (run llm28: "Open the document 'settings', set 'font.size' to 14, ...")
            if (
                _named_after_dependency(parent, i, j)
                and _named_after_dependency(child, i, j) is False
            ):
                return _order_message(child, i, j)
        for parent_id in call.depends_on:
            # a step word between them decides where first names cannot (a read moved to the
            # front, "Show the brake pedal status and then ... press the brake pedal", run
            # llm83): every own mention of the later call sits in an earlier step
            i = position[parent_id]
            if _in_earlier_step(child, i, j) and _in_earlier_step(parent, i, j) is False:
                return _order_message(child, i, j)
    return None


def _in_earlier_step(task: Task, i: int, j: int) -> bool | None:
    """Whether every place the question names call ``j`` by what is its own comes in an
    earlier step ("..., then ...") than every such place of call ``i`` (``None`` where either
    is not named by what is its own)."""
    first, last = _own_spots(task, i), _own_spots(task, j)
    if not first or not last:
        return None
    return max(_step_at(task.question, at) for at in last) < min(
        _step_at(task.question, at) for at in first
    )


def _step_at(question: str, at: int) -> int:
    return len(_STEP_WORD.findall(question[:at]))


_LONG_WORD = re.compile(r"[a-z]{4,}")


def _own_spots(task: Task, index: int) -> list[int]:
    """Every place the question names call ``index`` by what no other call shares: a literal
    only it takes, a word of its tool's name no other tool's name has."""
    call = task.calls[index]
    others = [other for k, other in enumerate(task.calls) if k != index]
    shared = {literal for other in others for literal in literals_of(other)}
    spots = []
    for literal in set(literals_of(call)) - shared:
        at = task.question.find(literal)
        while at >= 0:
            spots.append(at)
            at = task.question.find(literal, at + 1)
    stems = {word[:5] for word in name_words(call.tool)}
    stems -= {word[:5] for other in others for word in name_words(other.tool)}
    # a word inside another call's value written out ("brake pedal" for displayCarStatus's
    # option 'brakePedal') names that call, not the one whose tool has the word
    taken = [span for literal in shared for span in _spaced_spans(literal, task.question)]
    spots += [
        w.start()
        for w in _LONG_WORD.finditer(task.question.lower())
        if w.group()[:5] in stems and not any(a <= w.start() < b for a, b in taken)
    ]
    return spots


def _spaced_spans(literal: str, question: str) -> list[tuple[int, int]]:
    """Where the question writes an identifier-like value as words ('brakePedal', 'full_name'
    as "brake pedal", "full name"), case ignored."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", literal).replace("_", " ").lower()
    if spaced == literal.lower() or not spaced.strip():
        return []
    lowered = question.lower()
    return [(m.start(), m.end()) for m in re.finditer(re.escape(spaced), lowered)]


def _named_after_dependency(task: Task, i: int, j: int) -> bool | None:
    """Whether the question names call ``j`` last after it first names call ``i`` (``None``
    where either is not named by what is its own)."""
    first, last = _own_spots(task, i), _own_spots(task, j)
    if not first or not last:
        return None
    return max(last) > min(first)


def _order_message(child: Task, i: int, j: int) -> str:
    return (
        f"the paraphrase names {child.calls[j].tool} before {child.calls[i].tool}, which it"
        " depends on; its parent named them in the order they run"
    )


#: the user speaking of themself
_FIRST_PERSON = frozenset({"i", "i'm", "i've", "i'd", "i'll", "me", "my", "mine", "myself"})
#: the assistant's own things, which a user's request has no reason to mention
_SECOND_PERSON_OWN = frozenset({"your", "yours", "yourself"})


def voice_changed(parent: Task, child: Task) -> str | None:
    """Why the paraphrase turns the user's own things into the assistant's, or ``None``: where
    the parent speaks as the user ("register my card"), a new "your" makes the request speak
    as the assistant ("set your name to Priya Raman. Register your card", run llm25, failed by
    both readers). Quoted values are not read."""
    before = QuestionText(parent.question).words
    if not _FIRST_PERSON.intersection(before):
        return None
    after = QuestionText(child.question).words
    added = sum(w in _SECOND_PERSON_OWN for w in after) - sum(
        w in _SECOND_PERSON_OWN for w in before
    )
    if added <= 0:
        return None
    where = next(i for i, w in enumerate(after) if w in _SECOND_PERSON_OWN)
    phrase = " ".join(after[max(0, where - 2) : where + 3])
    return (
        f"the paraphrase speaks of the user's things as the assistant's ({phrase!r}) where the"
        " parent's request speaks as the user"
    )


_CLAUSE_BREAK = re.compile(r"[.;,:!?()]|\b(?:and|then)\b")
_PARENTHESIS = re.compile(r"\(([^()]*)\)")
_TOKEN = re.compile(r"[a-z0-9]+")


def step_dropped(parent: Task, child: Task) -> str | None:
    """A call the parent's request asks for in a clause that the paraphrase keeps nothing of,
    neither a word of the call's tool ("summarise") nor another word of that clause, or
    ``None``: "Draw 6 random prices ..., then summarise them" rewritten as "Generate a list
    of 6 random prices ..." (run llm26) still summarises, unasked. "Multiply 7 by 6" as "the
    product of 7 and 6" keeps the clause's numbers."""
    kept = stems(child.question)
    shared = _shared_word_dropped(parent, child, kept)
    if shared is not None:
        return shared
    # a parenthesis belongs to the clause before it: "summarise the sequence (count, sum, ...)"
    text = _PARENTHESIS.sub(lambda m: " " + re.sub(r"[,;]", " ", m.group(1)), parent.question)
    clauses = [c for c in _CLAUSE_BREAK.split(text.lower()) if c.strip()]
    child_clauses = [c for c in _CLAUSE_BREAK.split(child.question.lower()) if c.strip()]
    # a word of another call's tool ("text" of count_text) says nothing of this step
    every_tool = {stem for call in child.calls for stem in tool_words(call.tool)}
    for call in child.calls:
        wanted = tool_words(call.tool)
        if any(stem in kept for stem in wanted):
            continue
        # a number keeps its clause where the paraphrase says it for no other call: "Raise 2
        # to the power of 10, then take the base-2 logarithm of the result" as "Take the
        # base-2 logarithm of 10" (run llm131) made the 10 the logarithm's
        others_tools = every_tool - wanted
        kept_tokens = {
            token
            for clause in child_clauses
            if not stems(clause).keys() & others_tools
            for token in _TOKEN.findall(clause)
        }
        for clause in clauses:
            if not any(stem in wanted for stem in stems(clause)):
                continue
            others = [
                token
                for token in _TOKEN.findall(clause)
                if token not in GLUE_WORDS
                and token not in GENERIC_NAME_WORDS  # "list" says nothing of which step
                and (token.isdigit() or len(token) > 2)
                and not any(stem in every_tool for stem in stems(token))
            ]
            if not any(
                token in kept_tokens if token.isdigit() else any(stems(token).keys() & kept.keys())
                for token in others
            ):
                return (
                    f"the paraphrase no longer asks for {call.function}: nothing of its"
                    f" parent's words for it ({clause.strip()!r}) is left"
                )
    return None


def _shared_word_dropped(parent: Task, child: Task, kept: Counter[str]) -> str | None:
    """A write whose verb (the first word of its tool's name) the parent says more than once
    (once for it, once for another step) and the paraphrase fewer times: "Follow carla_dev
    and then tell me how many accounts my account sam_t follows" as "Tell me how many accounts
    sam_t follows, starting from carla_dev" (run llm34) still follows carla_dev, unasked.
    A clause that opens on a word of the tool ("publish '...'" for ``post_tweet``) asks for
    it still."""
    said = stems(parent.question)
    openers = {
        stem for verb in clause_openers(child.question, acting=False) for stem in stems(verb)
    }
    for call in parent.calls:
        if resolve_tool(call.tool)[1].kind is not ToolKind.WRITE:
            continue
        verb = stems(call.function.split("_", 1)[0])  # follow_user: "follow", not "user"
        named = [word for word in tool_words(call.tool) if said[word] and word in verb]
        fewer = [word for word in named if said[word] >= 2 and kept[word] < said[word]]
        if fewer and not openers & tool_words(call.tool):  # "publish '...'" asks to post
            word = fewer[0]
            return (
                f"the paraphrase no longer asks for {call.function}: words starting {word!r}"
                f" appear {kept[word]} time(s), {said[word]} in its parent, where another step"
                " needs them too"
            )
    return None


#: words that open a reason or premise ("Since the billing issue has been resolved, ...")
_REASON = re.compile(r"\b(?:since|because|now that|given that|as long as)\b")


def reason_added(parent: Task, child: Task) -> str | None:
    """A reason or premise the paraphrase states and its parent did not, or ``None``: "Since
    the marathon has already been run, search for posts about 'marathon' ..." (run llm27)
    invents a context; a paraphrase only rewords. Quoted values are not read."""
    before = Counter(_REASON.findall(QuestionText(parent.question).lower))
    after = QuestionText(child.question).lower
    for match in _REASON.finditer(after):
        if before[match.group()] < Counter(_REASON.findall(after))[match.group()]:
            # the masked text keeps every offset, so the span reads from the question itself
            clause = re.split(r"[,.;]", child.question[match.start() :], maxsplit=1)[0]
            return f"the paraphrase adds a reason its parent never gave ({clause!r})"
    return None


def action_added(parent: Task, child: Task) -> str | None:
    """An action the paraphrase asks for beyond its parent's, or ``None``: "Find it among my
    tickets and close it" rewritten as "Find my own Open ticket, open it and close it" (run
    llm30) asks to open the ticket, and no call does. The paraphrase's actions are counted
    strictly and its parent's generously, so a rewording ("perform the multiplication" for
    "multiply 7 by 6", "display" for "show") is never taken for an added action."""
    before, after = (
        clause_openers(parent.question, acting=False),
        clause_openers(child.question, acting=True),
    )
    if len(after) <= len(before):
        return None
    had = {stem for verb in before for stem in stems(verb)}
    for verb in after:
        if not stems(verb).keys() & had:
            return f"the paraphrase asks for an action its parent never asked for ({verb!r})"
    return None


def _same_root(a: str, b: str) -> bool:
    """ "requiring" and "required" share a root; "id" and "idea" do not."""
    shorter = min(len(a), len(b))
    if shorter < 4:
        return a == b
    size = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), shorter)
    return size >= min(5, shorter)


def role_dropped(parent: Task, child: Task) -> str | None:
    """A clause that tells which argument stated values fill, lost by the paraphrase, or
    ``None``: "... where 'id' is an integer, 'total' a number ..., requiring 'id' and 'total'"
    rewritten without "requiring" (run llm30), or as "The schema requires fields such as 'id'
    to be an integer, 'total' ... and 'paid' ..." (run llm31: which are required is lost) leaves
    'id' and 'total' stated, but no longer as the required fields. Only values that another
    argument of the same call also holds are read, since there the values alone cannot say
    which argument is meant: a clause with a word of the argument's name must hold exactly
    them, as one of the parent's does."""
    for call in parent.calls:
        candidates = {
            str(item) for held in call.arguments.values() for item in scalars(held, with_keys=True)
        }
        for name, value in call.arguments.items():
            if name in call.bindings or any(slot.startswith(f"{name}.") for slot in call.bindings):
                continue
            stated = {str(item) for item in scalars(value) if isinstance(item, str)}
            elsewhere = {
                str(item)
                for other, held in call.arguments.items()
                if other != name
                for item in scalars(held, with_keys=True)
            }
            if not stated or not stated <= elsewhere:
                continue
            cues = [part for part in name.lower().split("_") if len(part) >= 4]
            if stated not in _cue_clauses(parent.question, cues, candidates):
                continue  # the parent does not say it in one clause either
            if stated not in _cue_clauses(child.question, cues, candidates):
                return (
                    f"the paraphrase no longer says which values are the {name!r} of "
                    f"{call.function} ({', '.join(sorted(map(repr, stated)))})"
                )
    return None


_CLAUSE_END = re.compile(r"[,.;:!?]")


def _cue_clauses(question: str, cues: list[str], candidates: set[str]) -> list[set[str]]:
    """For each clause of ``question`` with a word sharing a root with a cue, the candidate
    values it writes out."""
    found = []
    for clause in _CLAUSE_END.split(question):
        words = _TOKEN.findall(clause.lower())
        if any(_same_root(word, cue) for word in words for cue in cues):
            found.append({value for value in candidates if token_in(value, clause)})
    return found


def choice_dropped(parent: Task, child: Task) -> str | None:
    """A choice the parent's request words (a mode, a door: a value from a set the tool
    documents) that the paraphrase no longer says, or ``None``: "Release the parking brake,
    ..." rewritten as "To ensure the parking brake is fully engaged, ..." (run llm31) still
    releases it. A choice counts where the parent writes the value itself, in any case
    ("Release"); the paraphrase may write any form of it ("released")."""
    child_words = _TOKEN.findall(child.question.lower())
    parent_words = _TOKEN.findall(parent.question.lower())
    for call in parent.calls:
        spec = resolve_tool(call.tool)[1]
        for name, value in call.arguments.items():
            if spec.param_types.get(name) is not Sem.OPTION or name in call.bindings:
                continue
            if not isinstance(value, str) or not value.isalpha() or len(value) < 4:
                continue
            choice = value.lower()
            if choice in parent_words and not any(_same_root(word, choice) for word in child_words):
                return f"the paraphrase no longer says {value!r}, the {name} of {call.function}"
    return None


#: an ordinal that picks one of several ("write the first of them", "its last line"); a
#: travel class or a step of the request is no pick
_PICK = re.compile(
    r"\b(?:the|its|their|his|her|my|your)\s+(?:very\s+)?"
    r"(first|second|third|fourth|fifth|last|1st|2nd|3rd|earliest|initial|final|latest)\b"
    r"(?![\s-]+(?:class|step)\b)"
)
#: the forms of one pick a paraphrase may write
_PICK_FORMS = {
    "1st": "first", "earliest": "first", "initial": "first", "2nd": "second", "3rd": "third",
    "final": "last", "latest": "last",
}  # fmt: skip


def pick_dropped(parent: Task, child: Task) -> str | None:
    """An entry the parent's request picks by its place ("the first of them") that the
    paraphrase no longer picks, or ``None``: "find the lines ... that mention 'Action' and
    write the first of them into ..." as "copy those lines into a new file" (run llm131, a
    reader) asks for every line where the calls write one."""

    def picks(question: str) -> Counter[str]:
        found = _PICK.findall(QuestionText(question).lower)
        return Counter(_PICK_FORMS.get(word, word) for word in found)

    before, after = picks(parent.question), picks(child.question)
    for word, count in before.items():
        if after[word] < count:
            return f"the paraphrase no longer picks the {word} entry its parent asked for"
    return None


#: a request that opens by calling someone by name: "Daniel, please send ..."
_VOCATIVE = re.compile(r"^\s*(?:hi|hey|hello|dear)?[\s,]*([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)\s*,")


def recipient_addressed(parent: Task, child: Task) -> str | None:
    """A paraphrase that opens by calling on a name its parent did not open with, or ``None``:
    "Find Daniel's user id and send him the message '...'" as "Daniel, please send the
    message '...'" (run llm139, both readers) speaks to Daniel as if he were the assistant,
    and no longer says who gets the message."""
    match = _VOCATIVE.match(child.question)
    if match is None or _VOCATIVE.match(parent.question):
        return None
    name = match.group(1)
    # only a name a call is given is someone the request is about ("As USR001, log in" is not)
    stated = {str(value).lower() for call in child.calls for value in call.arguments.values()}
    if name.lower() not in stated:
        return None
    return f"the paraphrase speaks to {name!r} instead of asking on the user's behalf"


#: a condition or thing left unnamed ("the first one that meets a certain criteria")
_VAGUE = re.compile(r"\bcertain\b|\bsome kind of\b|\bsomething like\b")


def vagueness_added(parent: Task, child: Task) -> str | None:
    """A condition or thing the paraphrase leaves unnamed where its parent named all, or
    ``None``: "open the first one that meets a certain criteria" (run llm33) over "open the
    first one"; no reader can tell what the criteria are."""
    had = len(_VAGUE.findall(QuestionText(parent.question).lower))
    for match in list(_VAGUE.finditer(QuestionText(child.question).lower))[had:]:
        clause = re.split(r"[,.;]", child.question[match.start() :], maxsplit=1)[0]
        return f"the paraphrase leaves something unnamed ({clause!r})"
    return None


#: "new" or "newly created" before a thing, and the thing's word (up to one word between)
_NEW_THING = re.compile(r"\bnew(?:ly)?\s+(?:(?:created|made|opened)\s+)?(?:\w+\s+)?(\w+)")


def novelty_added(parent: Task, child: Task) -> str | None:
    """A thing the paraphrase calls new that the request names by a stated id, or ``None``:
    "display that new ticket's details" for ticket 1207, which the task only edits (run
    llm73); what the request identifies by its id was there before. So is a new thing where
    no call adds anything (see :func:`_unmade_novelty`)."""
    unmade = _unmade_novelty(parent, child)
    if unmade is not None:
        return unmade
    if _NEW_THING.search(QuestionText(parent.question).lower):
        return None
    stated = {
        word
        for call in child.calls
        for name, value in call.arguments.items()
        if name.endswith("_id") and str(value) in child.question
        for word in name.split("_")[:-1]
    }
    for match in _NEW_THING.finditer(QuestionText(child.question).lower):
        if match.group(1) in stated or match.group(1).rstrip("s") in stated:
            clause = child.question[match.start() : match.end()]
            return f"the paraphrase calls a thing the request names by its id new ({clause!r})"
    return None


#: names of data formats a request may ask for or about
_FORMAT = re.compile(r"\b(?:json|csv|tsv|markdown|xml|yaml|html|key[/-]value)\b")


def format_added(parent: Task, child: Task) -> str | None:
    """A data format the paraphrase names and its parent never did, or ``None``: "return the
    resulting Markdown table" for a conversion to CSV (both llm101 readers) asks for another
    output than the calls make. Quoted values are not read."""
    before = {
        match.replace("-", "/") for match in _FORMAT.findall(QuestionText(parent.question).lower)
    }
    for match in _FORMAT.finditer(QuestionText(child.question).lower):
        if match.group().replace("-", "/") not in before:
            return f"the paraphrase names a data format its parent never named ({match.group()!r})"
    return None


def _unmade_novelty(parent: Task, child: Task) -> str | None:
    """A thing the paraphrase calls new that its parent called the user's own ("my ..."):
    "Log me in to my brokerage account ..." as "Open a new brokerage account ..." (both
    llm107 readers) asks to make what the request only uses. "the new balance" stays."""
    before = Counter(m.group(1) for m in _NEW_THING.finditer(QuestionText(parent.question).lower))
    after = Counter(m.group(1) for m in _NEW_THING.finditer(QuestionText(child.question).lower))
    owned = {
        word
        for match in _OWN_THING.finditer(QuestionText(parent.question).lower)
        for word in match.group(1).split()
    }
    for thing in after:
        if after[thing] > before[thing] and thing in owned:
            match = re.search(rf"\bnew(?:ly)?\s+(?:\w+\s+){{0,2}}?{thing}\b", child.question, re.I)
            clause = match.group() if match else f"new {thing}"
            return f"the paraphrase calls new what its parent called the user's own ({clause!r})"
    return None


#: the words after "my", one of them the thing the request calls the user's own
_OWN_THING = re.compile(r"\bmy((?:\s+\w+){1,3})")


_NAME_PART = re.compile(r"[A-Z]?[a-z]+")
#: words before a stated value read for the field it fills ("with the title 'X'")
_CUE_WORDS = 3


def _text_fields(call: Any) -> dict[str, str]:
    """The texts a call passes, by the field they fill: an argument, or a key of a dict
    argument (``updates.description``)."""
    found: dict[str, str] = {}
    for name, value in call.arguments.items():
        if isinstance(value, str):
            found[name] = value
        elif isinstance(value, dict):
            found.update({str(k): v for k, v in value.items() if isinstance(v, str)})
    return found


def _field_words(field: str) -> set[str]:
    return {part.lower() for part in _NAME_PART.findall(field) if len(part) >= 4}


def _cues_before(question: str, value: str) -> list[list[str]]:
    """For each place the question writes ``value``, the last few words before it in its
    clause ("with the title")."""
    found = []
    at = question.find(value)
    while at >= 0:
        clause = re.split(r"[,.;:!?]\s|[()]", question[:at])[-1]
        found.append(_TOKEN.findall(clause.lower())[-_CUE_WORDS:])
        at = question.find(value, at + 1)
    return found


def role_swapped(parent: Task, child: Task) -> str | None:
    """A stated text the paraphrase introduces as another field of its call than the one it
    fills, or ``None``: "with the description 'Follow-up: ...'" rewritten as "with the title
    'Follow-up: ...'" (run llm89, both readers) where the title is the one the call copies
    from another ticket."""
    for call in child.calls:
        fields = _text_fields(call)
        for name, value in fields.items():
            if name in call.bindings or len(value) < 3:
                continue
            now, was = _cues_before(child.question, value), _cues_before(parent.question, value)
            if not now or not was:
                continue
            own = _field_words(name)
            if any(_same_root(w, p) for cue in now for w in cue for p in own):
                continue  # one place at least says it is the field it fills
            for other in fields:
                words = _field_words(other)
                if other == name or not words:
                    continue
                if all(
                    any(_same_root(w, p) for w in cue for p in words) for cue in now
                ) and not any(_same_root(w, p) for cue in was for w in cue for p in words):
                    return (
                        f"the paraphrase gives {value!r} as the {other} of {call.function};"
                        f" the call passes it as the {name}"
                    )
    return None


#: a sentence that opens on a purpose ("To find the distance between A and B, ...")
_PURPOSE = re.compile(r"(?:^|[.!?]\s+)(to\s+[a-z]+\b[^,.;!?]*),", re.IGNORECASE)


def purpose_only(parent: Task, child: Task) -> str | None:
    """A call the paraphrase names only inside a purpose it opens with, or ``None``: "How far
    is it from A to B? Look up the zip code of each city and estimate the distance" rewritten
    as "To find the distance between A and B, please provide the zip codes" (run llm89, both
    readers) asks for the zip codes; the distance is only why."""
    had = len(_PURPOSE.findall(parent.question))
    spans = [m.span(1) for m in _PURPOSE.finditer(child.question)][had:]
    if not spans:
        return None
    outside = child.question
    for a, b in spans:
        outside = outside[:a] + " " * (b - a) + outside[b:]
    tokens = _TOKEN.findall(outside.lower())
    # "zip codes" asks for get_zipcode_based_on_city: a name word may be written in two
    pairs = [first + second for first, second in zip(tokens, tokens[1:])]
    for index, call in enumerate(child.calls):
        spots = _own_spots(child, index)
        if not spots or not all(any(a <= at < b for a, b in spans) for at in spots):
            continue
        named = any(
            any(token[:5] == word[:5] for token in tokens)
            or any(pair.startswith(word) for pair in pairs)
            for word in name_words(call.tool)
        )
        if not named:
            a, b = next(span for span in spans if span[0] <= spots[0] < span[1])
            return (
                f"the paraphrase names {call.tool} only as a purpose"
                f" ({child.question[a:b]!r}), no longer as a step it asks for"
            )
    return None


def paraphrase_problem(parent: Task, child: Task) -> tuple[RejectionCode, str] | None:
    for code, rule in (
        (RejectionCode.EVOLVE_STEP_UNASKED, step_dropped),
        (RejectionCode.EVOLVE_LITERAL_CHANGED, literal_changed),
        (RejectionCode.EVOLVE_ORDER_CHANGED, order_changed),
        (RejectionCode.EVOLVE_MEANING_CHANGED, voice_changed),
        (RejectionCode.EVOLVE_MEANING_CHANGED, reason_added),
        (RejectionCode.EVOLVE_MEANING_CHANGED, action_added),
        (RejectionCode.EVOLVE_MEANING_CHANGED, role_dropped),
        (RejectionCode.EVOLVE_MEANING_CHANGED, choice_dropped),
        (RejectionCode.EVOLVE_MEANING_CHANGED, pick_dropped),
        (RejectionCode.EVOLVE_MEANING_CHANGED, recipient_addressed),
        (RejectionCode.EVOLVE_MEANING_CHANGED, vagueness_added),
        (RejectionCode.EVOLVE_MEANING_CHANGED, novelty_added),
        (RejectionCode.EVOLVE_MEANING_CHANGED, role_swapped),
        (RejectionCode.EVOLVE_MEANING_CHANGED, format_added),
        (RejectionCode.EVOLVE_MEANING_CHANGED, role_merged),
        (RejectionCode.EVOLVE_STEP_UNASKED, purpose_only),
    ):
        problem = rule(parent, child)
        if problem is not None:
            return code, problem
    return None


# --- any LLM operator: nothing copied from the worked example --------------------------------


def _runs(question: str, size: int) -> set[tuple[str, ...]]:
    found = words(question)
    return {tuple(found[i : i + size]) for i in range(len(found) - size + 1)}


def copied_phrase(
    shown: Sequence[str], parent: Task, question: str, size: int = COPIED_WORDS
) -> str | None:
    """A run of ``size`` words the new request shares with a worked example's request and not
    with its parent's: a small model shown an example about another task copies its clauses
    ("then close that new ticket right away") into the task it edits."""
    theirs = set().union(*(_runs(text, size) for text in shown)) if shown else set()
    own = _runs(parent.question, size)
    for run in sorted(_runs(question, size) & theirs - own):
        return " ".join(run)
    return None


# --- the check the engine runs ---------------------------------------------------------------

Rule = Callable[[Task, Task], str | None]
RULES: dict[str, tuple[RejectionCode, Rule]] = {
    "deepen": (RejectionCode.EVOLVE_NOT_DEEPER, _not_deeper),
    "broaden": (RejectionCode.EVOLVE_SAME_GOAL, _same_goal),
    "paraphrase": (RejectionCode.EVOLVE_LITERAL_CHANGED, literal_changed),
}


class NoveltyCheck:
    """One shard's memory of its parents and the candidates accepted from each.

    Every accepted candidate goes through :meth:`admit` in order; the LLM operators' ones
    (and their repairs, under the operator they repair) are checked, the others only remembered
    as siblings.
    """

    def __init__(self, parents: Sequence[Task]) -> None:
        self._parents = {parent.id: parent for parent in parents}
        self._accepted: dict[str, list[Task]] = {}

    def admit(self, operator: str, parent_id: str, task: Task) -> Task | Rejection:
        parent = self._parents.get(parent_id)
        siblings = self._accepted.setdefault(parent_id, [])
        if parent is None or operator not in RULES:
            siblings.append(task)
            return task
        rejection = self._copy_of(operator, parent, siblings, task)
        if rejection is None:
            code, rule = RULES[operator]
            problem = rule(parent, task)
            if problem is None and operator == "paraphrase":
                found = paraphrase_problem(parent, task)
                if found is not None:
                    code, problem = found
            if problem is not None:
                rejection = self._reject(code, problem, operator, parent, task, parent)
        if rejection is not None:
            return rejection
        siblings.append(task)
        return task

    def _copy_of(
        self, operator: str, parent: Task, siblings: Sequence[Task], task: Task
    ) -> Rejection | None:
        for original, kind in [(parent, "its parent"), *((s, "a sibling") for s in siblings)]:
            found = near_copy(original, task)
            if found is not None:
                changed, ratio = found
                message = (
                    f"{operator} repeats {kind} {original.id}: the same calls, and the question"
                    f" changes {changed} word(s) (similarity {ratio:.2f})"
                )
                return self._reject(
                    RejectionCode.EVOLVE_NEAR_COPY, message, operator, parent, task, original
                )
        return None

    def _reject(
        self,
        code: RejectionCode,
        message: str,
        operator: str,
        parent: Task,
        task: Task,
        compared: Task,
    ) -> Rejection:
        known = {parent.id, *(s.id for s in self._accepted.get(parent.id, []))}
        # a word-for-word copy has an accepted task's id: an id is never accepted and rejected
        sample_id = f"{parent.id}:{operator}" if task.id in known else task.id
        evidence = Evidence(
            output={"compared_with": compared.id, "question": compared.question},
            diff=[f"- {compared.question}", f"+ {task.question}"],
        )
        return Rejection(
            sample_id=sample_id, stage=Stage.EVOLVE, code=code, message=message, evidence=evidence
        )
