"""Control dependencies that a question's conditional wording creates.

"Check the tyres; should any fall below 40 PSI, find the nearest shop" makes the shop lookup
happen only after the check has answered, even though no value flows between the two calls and
replaying them in either order gives the same results. Execution cannot see such an edge; the
wording can.

Rule: the question is split into sentences, and each call is placed in the sentence that names
it best (the most literal arguments it passes and words of its tool's name), never before the
sentence of the call before it; calls that nothing names stay with the previous call's sentence.
In a sentence with a conditional clause ("if", "unless", "should any ...", "in case",
"only when", "whenever", "once you ...", "check that ...", "verify whether ..."; not
"if possible", "if needed"), the tested value comes from, in this order:

1. the last read (a call of kind ``read``) the sentence names before its condition ("Check the
   tyres, and should any be low, find a shop"): the calls placed after it are conditioned;
2. a read of the sentence that the condition clause names more than the rest of the sentence
   does ("Should my tyre pressure be under 40 PSI, find a shop"): the calls placed after it
   are conditioned;
3. the closest read placed in an earlier sentence ("Check the tyres. Should any be low, find a
   shop and navigate there"): every call placed in the sentence is conditioned;
4. the sentence's own first read, when the condition is a check ("Log in, check that I am
   logged in, and then send the message") or the read is not named after the condition: the
   calls after it are conditioned.

A call of the tested read's own tool is not conditioned on it (asking again is no action). A
conditional sentence with steps but no read to test ("should any tyre be under 40 PSI, find a
shop" with no pressure check) is reported by :func:`untested_conditions` (the validator
rejects it: the condition cannot be evaluated), and so is "check that ..." in a sentence whose
steps make no read ("verify every door is secured" answered by locking them). "If" after
"verify", "see", "tell me" and the like asks whether, and is no condition.
A call that passes one of two quoted alternatives the question offers ("share the status, with
the message 'healthy' or 'not healthy'") passes what a read decided, and depends on the closest
earlier read.
Each conditioned step depends on the tested read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.envs import ToolError, ToolKind, resolve_tool
from pipeline.jsontree import leaves
from pipeline.models import Call

#: a clause that makes a step happen only under a condition on some value; "if possible",
#: "if needed" and the like condition on nothing the calls return
CONDITION = re.compile(
    # "verify if", "see if", "tell me if": an indirect question (whether), not a condition
    r"(?<!verify )(?<!check )(?<!see )(?<!know )(?<!ask )(?<!tell me )(?<!determine )"
    r"(?<!confirm )(?<!wonder )(?<!out )"
    r"\b(?:if|unless|in case|only when|whenever"
    r"|should (?:any|the|it|its|my|one|there|i|you|we|a|an|this|that)"
    # "once you locate the file, read it": the reading waits for the finding
    r"|once (?:you|you've|you're|it|it's|the|that|this|i|i've|we|everything|all)"
    r"|(?:check|verify|confirm) (?:that|whether))\b"
    r"(?!\s+(?:possible|needed|necessary|required|you can|you could|applicable|any\s*[,.;]"
    r"|(?:that|it|this) helps|you (?:don't|do not) mind|you (?:like|want|prefer|wish)))",
    re.IGNORECASE,
)
#: a word every condition cue contains
_CUE_WORDS = ("if", "unless", "case", "when", "should", "once", "check", "verify", "confirm")
_CHECK = re.compile(r"(?:check|verify|confirm)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_MIN_WORD = 4


def sentences(question: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(question) if part.strip()]


def name_words(tool: str) -> list[str]:
    """The words of a tool's name a question may use for it (``load_document``: load, document)."""
    function = tool.rsplit(".", 1)[-1]
    return [w.lower() for w in _NAME_PART.findall(function) if len(w) >= _MIN_WORD]


def literals_of(call: Call) -> list[str]:
    """The call's literal values as a question would write them (strings of 3 characters or
    more, numbers other than 0 and 1)."""
    found: list[str] = []
    values = list(call.arguments.values())
    while values:
        value = values.pop()
        if isinstance(value, list):
            values += value
        elif isinstance(value, dict):
            values += list(value.values())
        elif isinstance(value, str) and len(value) >= 3:
            found.append(value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 1:
            found.append(str(int(value)) if float(value).is_integer() else repr(value))
    return found


_STEM_WORD = re.compile(r"[a-z]{4,}")


def _mentions(call: Call, sentence: str) -> list[tuple[int, int]]:
    """Where ``sentence`` names ``call``, as (position, weight): literal arguments weigh 2, words
    of the tool's name 1, compared by stem ("shop" ~ "shops", "pressure" ~ "pressures")."""
    found = [(sentence.find(literal), 2) for literal in literals_of(call) if literal in sentence]
    stems = {part[:5] for part in name_words(call.tool)}
    seen: set[str] = set()
    for word in _STEM_WORD.finditer(sentence.lower()):
        stem = word.group()[:5]
        if stem in stems and stem not in seen:
            seen.add(stem)
            found.append((word.start(), 1))
    return found


def _score(call: Call, sentence: str) -> int:
    return sum(weight for _, weight in _mentions(call, sentence))


def all_mentions(call: Call, sentence: str) -> list[int]:
    """Every position where ``sentence`` names ``call``, each literal at each occurrence."""
    spots = [at for at, _ in _mentions(call, sentence)]
    for literal in literals_of(call):
        at = sentence.find(literal)
        while at >= 0:
            spots.append(at)
            at = sentence.find(literal, at + 1)
    return spots


def names_call(call: Call, sentence: str) -> bool:
    """Whether ``sentence`` names ``call`` (a literal argument or a word of its tool's name)."""
    return bool(_mentions(call, sentence))


def place_calls(question: str, calls: Sequence[Call]) -> list[int]:
    """The sentence each call belongs to, in order: never before the previous call's sentence."""
    parts = sentences(question)
    placed: list[int] = []
    current = 0
    for call in calls:
        scores = {index: _score(call, parts[index]) for index in range(current, len(parts))}
        best = max(scores.values(), default=0)
        if best > 0:
            tied = [index for index, score in scores.items() if score == best]
            # a tie between this sentence and the next goes forward: calls move on through the
            # question, and the shared word here was most likely the previous call's
            forward = tied[0] == current and current + 1 in tied
            current = current + 1 if forward else tied[0]
        placed.append(current)
    return placed


def _is_read(call: Call) -> bool:
    try:
        return resolve_tool(call.tool)[1].kind is ToolKind.READ
    except ToolError:
        return False


#: quoted alternatives for one value ("with the message 'healthy' or 'not healthy'")
_ALTERNATIVES = re.compile(r"""(['"])([^'"\n]{1,80})\1\s*,?\s+or\s+(['"])([^'"\n]{1,80})\3""")


def _choice_edges(question: str, calls: Sequence[Call]) -> list[tuple[int, int]]:
    """A call that passes one of two quoted alternatives the question offers ("post 'healthy'
    or 'not healthy'") passes what an earlier read decided: it depends on the closest one."""
    choices = {value for match in _ALTERNATIVES.finditer(question) for value in match.group(2, 4)}
    if not choices:
        return []
    edges: list[tuple[int, int]] = []
    for j, call in enumerate(calls):
        values = [v for v in call.arguments.values() if isinstance(v, str)]
        if any(value in choices for value in values):
            reads = [i for i in range(j) if _is_read(calls[i])]
            if reads:
                edges.append((reads[-1], j))
    return edges


def alternatives(question: str) -> dict[str, str]:
    """Each quoted alternative of the question mapped to the other one of its pair."""
    pairs: dict[str, str] = {}
    for match in _ALTERNATIVES.finditer(question):
        first, second = match.group(2, 4)
        pairs[first], pairs[second] = second, first
    return pairs


_NEGATION = re.compile(r"^(?:not|no|un)[ -]?", re.IGNORECASE)


def _affirmative(first: str, second: str) -> tuple[str, str] | None:
    """``(positive, negative)`` when one alternative negates the other ('healthy' and
    'not healthy', 'safe' and 'unsafe'), else ``None``."""
    for positive, negative in ((first, second), (second, first)):
        stripped = _NEGATION.sub("", negative, count=1)
        if stripped != negative and stripped.lower() == positive.lower():
            return positive, negative
    return None


def contradicted_choices(
    question: str, calls: Sequence[Call], outputs: Sequence[Any]
) -> list[tuple[int, str, str]]:
    """``(step, passed, decided)`` for each call that passes one of two quoted alternatives
    ('healthy' or 'not healthy') where the read it depends on says the other: a boolean field
    named after the word (``healthy_tire_pressure: true``) decides which one is true."""
    found: list[tuple[int, str, str]] = []
    pairs = [_affirmative(*m.group(2, 4)) for m in _ALTERNATIVES.finditer(question)]
    for read, j in _choice_edges(question, calls):
        for pair in filter(None, pairs):
            positive, negative = pair
            passed = [v for v in calls[j].arguments.values() if v in (positive, negative)]
            word = positive.lower().replace(" ", "_")
            flags = {
                value
                for path, value in leaves(outputs[read])
                if isinstance(value, bool) and word in path.lower()
            }
            if passed and len(flags) == 1:
                decided = positive if flags.pop() else negative
                if passed[0] != decided:
                    found.append((j, str(passed[0]), decided))
    return found


def _conditional_steps(
    question: str, calls: Sequence[Call]
) -> Iterator[tuple[str, int | None, list[int]]]:
    """For each conditional sentence with calls placed in it: the sentence, the tested read
    (``None`` when no step reads anything it could test) and the conditioned calls."""
    lowered = question.lower()
    if not any(word in lowered for word in _CUE_WORDS):
        return  # most questions condition nothing: skip the sentence split and the regex
    parts = sentences(question)
    if not any(CONDITION.search(part) for part in parts):
        return
    placed = place_calls(question, calls)
    for index, part in enumerate(parts):
        cue = CONDITION.search(part)
        members = [j for j, spot in enumerate(placed) if spot == index]
        if cue is None or not members:
            continue
        # where the sentence first names each member: a read named before the condition is the
        # one it tests ("Check the tyres, and should any be low, find a shop")
        first = {
            j: min((at for at, _ in _mentions(calls[j], part)), default=len(part)) for j in members
        }
        before = [j for j in members if _is_read(calls[j]) and first[j] < cue.start()]
        earlier = [i for i in range(members[0]) if placed[i] < index and _is_read(calls[i])]
        own = [j for j in members if _is_read(calls[j])]
        # "Should my tire pressure fall below 40, ...": the read the condition itself names
        comma = part.find(",", cue.end())
        clause_end = comma if comma >= 0 else len(part)
        clause = part[cue.start() : clause_end]
        rest = part[: cue.start()] + " " + part[clause_end:]
        named_in_condition = [j for j in own if _score(calls[j], clause) > _score(calls[j], rest)]
        if before:
            yield part, before[-1], [j for j in members if j > before[-1]]
        elif named_in_condition and named_in_condition[0] != members[-1]:
            tested = named_in_condition[0]
            yield part, tested, [j for j in members if j > tested]
        elif earlier:
            yield part, earlier[-1], members
        elif (
            own
            and own[0] != members[-1]
            and (_CHECK.match(cue.group()) or first[own[0]] == len(part))
        ):
            # "check that I'm logged in, and then send": the read the cue itself describes
            yield part, own[0], [j for j in members if j > own[0]]
        else:
            yield part, None, members


def untested_conditions(question: str, calls: Sequence[Call]) -> list[str]:
    """Conditional sentences whose steps test a value that no step reads ("should any tyre be
    under 40 PSI, find a shop" with no pressure check): the condition cannot be evaluated.
    A check ("verify that every door is secured") whose sentence has steps but no read counts
    too: the steps act (lock the doors) instead of looking, so the check asked for is never
    made."""
    return [part for part, tested, _ in _conditional_steps(question, calls) if tested is None]


def _cue(sentence: str) -> str:
    found = CONDITION.search(sentence)
    return found.group() if found else ""


def control_edges(question: str, calls: Sequence[Call]) -> list[tuple[int, int]]:
    """``(read, conditioned)`` index pairs that the question's conditional clauses create."""
    edges: list[tuple[int, int]] = []
    for _, tested, conditioned in _conditional_steps(question, calls):
        if tested is not None:
            # asking the same thing again is not the conditioned action
            edges += [(tested, j) for j in conditioned if calls[j].tool != calls[tested].tool]
    choices = _choice_edges(question, calls)
    return edges + [edge for edge in choices if edge not in edges]


#: words that order two actions of one sentence. ``before``/``after`` mid-sentence ("lock the
#: doors before starting the engine"), or opening it ("Before starting the engine, lock the
#: doors"); a trailing "ensuring ..." / "making sure ..." names what must hold when the action
#: before it runs ("start the engine, ensuring the doors are locked"). "After that" and the like
#: point at the previous sentence, whose calls come first anyway.
_ORDER = re.compile(
    r"\b(?:(?P<before>before|prior to)"
    r"|(?P<after>after|once)(?!\s+(?:that|this|which|it|all|wards)\b)"
    r"|(?P<ensure>ensuring|making sure))\b",
    re.IGNORECASE,
)


def _ordered_groups(part: str, cue: re.Match[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(first, second)``: the character spans of the sentence whose actions come first and
    second, for the order word ``cue``."""
    end = len(part)
    opening = not part[: cue.start()].strip(" ,;:-—")
    if opening:  # "Before/After X, Y": the clause runs to the first comma
        comma = part.find(",", cue.end())
        if comma < 0:
            return (0, 0), (0, 0)
        clause, rest = (cue.end(), comma), (comma + 1, end)
        return (rest, clause) if cue.group("before") else (clause, rest)
    head, tail = (0, cue.start()), (cue.end(), end)
    return (head, tail) if cue.group("before") else (tail, head)


def order_edges(question: str, calls: Sequence[Call]) -> set[tuple[int, int]]:
    """``(i, j)`` pairs the question orders in words: call ``i`` is named in the part of a
    sentence its order word puts first, call ``j`` (later in the sequence) in the part it puts
    second (named: a literal argument or a word of its tool's name, as for conditions). A call
    named on both sides orders nothing; a pair the sequence runs the other way round is left to
    the other checks."""
    lowered = question.lower()
    if not any(
        word in lowered for word in ("before", "prior", "after", "once", "ensuring", "sure")
    ):
        return set()
    edges: set[tuple[int, int]] = set()
    for part in sentences(question):
        cues = list(_ORDER.finditer(part))
        if not cues:
            continue
        # every call the sentence names, wherever the sequence places it: upstream wording
        # often gives an amount sentences later ("..., ensuring the brake is set. Fill 30.")
        named = {j: all_mentions(call, part) for j, call in enumerate(calls)}
        for cue in cues:
            first, second = _ordered_groups(part, cue)
            early = {
                j for j, spots in named.items() if any(first[0] <= a < first[1] for a in spots)
            }
            late = {
                j for j, spots in named.items() if any(second[0] <= a < second[1] for a in spots)
            }
            edges |= {(i, j) for i in early - late for j in late - early if i < j}
    return edges
