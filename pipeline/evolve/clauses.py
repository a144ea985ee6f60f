"""The clauses of a request and the verbs that open them, for checks that count what a request
asks for ("find it and close it": two actions)."""

from __future__ import annotations

import re

from pipeline.validate.question import QuestionText

#: words a clause shares with any other (its other words say what it is about)
GLUE_WORDS = frozenset({
    "the", "then", "them", "they", "and", "that", "this", "those", "these", "with", "for",
    "from", "into", "its", "their", "please", "also", "finally", "first", "after", "next",
    "all", "can", "you", "could", "would", "will", "what", "which", "how", "now", "too",
})  # fmt: skip
#: what an imperative acts on: "open it", "close the ticket", "show me", "list my files"
OBJECT_WORDS = frozenset({
    "it", "them", "that", "this", "those", "these", "the", "my", "me", "all", "a", "an", "each",
    "every", "our", "us",
})  # fmt: skip
#: where a clause of a request may open: a sentence or comma break, "and", "then"
_ACTION_BREAK = re.compile(r"[.;,:!?]|\b(?:and|then|also|please)\b")
#: openers that are not actions of the request
_NOT_ACTIONS = frozenset({"i", "it", "we", "you", "they", "there", "which", "what", "if", "when"})


def clause_openers(question: str, acting: bool) -> list[str]:
    """The words that open the request's clauses; with ``acting`` only verbs seen acting on
    something ("open it", "read the"), otherwise every opener (a generous count)."""
    found: list[str] = []
    for clause in _ACTION_BREAK.split(QuestionText(question).lower):
        tokens = clause.split()
        if not tokens or not tokens[0].isalpha():
            continue
        opener, following = tokens[0], tokens[1] if len(tokens) > 1 else ""
        if opener in _NOT_ACTIONS or opener in OBJECT_WORDS or opener in GLUE_WORDS:
            continue
        if acting and following not in OBJECT_WORDS:
            continue
        found.append(opener)
    return found
