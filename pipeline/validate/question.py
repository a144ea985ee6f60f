"""Question checks: the question stands on its own, asks for something and reads cleanly.

They judge the text alone (plus the calls' literal arguments for ``format_lost``), with
precompiled patterns and a single analysis of the question shared by every check, so they cost
microseconds per task. Quoted spans (``'...'``, ``"..."``, backticks, curly quotes) are values,
not prose: they are masked (same length, so offsets still point into the question) before the
prose is read, so a message text such as ``'Splash silence again'`` is never mistaken for the
question's own words.

``check_question`` runs the four checks below; the first that fails is the verdict, and what
the others find is added to the evidence as ``also_failed``:

1. ``question.template_artefact``: generator leftovers: a phrase (or word) repeated back to
   back, an unfilled slot (``{x}``, ``{{ x }}``, ``<placeholder>``, ``[...]``, ``None`` as a
   value), empty or glued quotes (``the meadow' 'id'``), an unbalanced quote, doubled
   punctuation (``,,``, ``..``, ``. .``), two articles in a row (``a the``);
2. ``question.context_dependent``: the question leans on a conversation that is not there: it
   opens with a connective that continues earlier discourse (``Furthermore,``, ``Lastly,``)
   before anything was asked, refers back to what was never said (``as I mentioned``, ``the
   aforementioned``), or, before any earlier request could supply a referent, uses a
   demonstrative (``that file``), ``the same X``, ``again`` or a bare ``it``/``them`` whose
   antecedent the question does not contain; or it asks for a number of shares without ever
   naming the stock;
3. ``question.no_request``: no sentence asks for anything (no ``?``, no imperative, no request
   marker such as ``please``, ``could you``, ``I'd like``, ``let's``);
4. ``question.format_lost``: a literal argument with a format marker (leading ``@``/``#``, a
   file extension, an ISO date) appears in the question only without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pipeline.envs import ToolError, resolve_tool
from pipeline.models import Evidence, RejectionCode
from pipeline.semantics import Sem
from pipeline.validate.context import Reject, ValidationContext

# ----- vocabulary ---------------------------------------------------------------------------

#: base forms of verbs a request commonly starts with (an imperative); inflected forms count
#: as verbs too where a check only needs to know that a word is not a noun
VERBS = frozenset({
    "add", "adjust", "allocate", "amplify", "analyse", "analyze", "announce", "append",
    "apply", "approve", "archive", "arrange", "ask", "assess", "assign", "assist", "attach",
    "attempt", "authenticate", "average", "back", "backup", "block", "book", "boost", "bring",
    "broadcast", "browse", "bump", "buy", "calculate", "call", "cancel", "cap", "capitalise",
    "capitalize", "cd", "change", "charge", "chart", "check", "choose", "clean", "clear",
    "close", "collect", "combine", "comment", "compare", "compile", "complete", "compose",
    "compute", "conduct", "confirm", "connect", "contact", "convert", "copy", "count", "craft",
    "create", "cut", "decline", "decrease", "deduct", "delete", "deposit", "describe",
    "determine", "diff", "disable", "dispatch", "display", "divide", "do", "double",
    "download", "draft", "draw", "drop", "duplicate", "edit", "email", "empty", "enable",
    "engage", "ensure", "enter", "establish", "estimate", "evaluate", "examine", "exchange",
    "execute", "expand", "export", "extract", "fetch", "file", "fill", "filter", "find",
    "finish", "fire", "fix", "flag", "flatten", "flip", "follow", "format", "forward",
    "gather", "generate", "get", "give", "go", "grab", "grep", "group", "guide", "help",
    "hide", "identify", "ignite", "import", "include", "increase", "inform", "initiate",
    "insert", "inspect", "install", "investigate", "invite", "join", "keep", "kick", "label",
    "launch", "leave", "limit", "list", "load", "locate", "lock", "log", "login", "logout",
    "look", "lower", "make", "map", "mark", "match", "measure", "merge", "message", "mention",
    "modify", "move", "multiply", "mute", "name", "navigate", "notify", "obtain", "open",
    "order", "organise", "organize", "pad", "paste", "pause", "perform", "pick", "pin",
    "place", "plan", "plot", "populate", "post", "prepare", "press", "print", "proceed",
    "process", "procure", "provide", "publish", "pull", "purchase", "push", "put", "query",
    "raise", "rank", "read", "record", "reduce", "refill", "refresh", "register", "relay",
    "release", "reload", "remind", "remove", "rename", "reorder", "repeat", "replace",
    "replicate", "reply", "report", "repost", "request", "reserve", "reset", "resize",
    "resolve", "restart", "restore", "retrieve", "retweet", "return", "reverse", "review",
    "revoke", "roll", "rotate", "round", "run", "save", "scan", "schedule", "search", "secure",
    "select", "sell", "send", "set", "settle", "share", "shift", "show", "shuffle", "shut",
    "sign", "simulate", "skip", "slice", "sort", "specify", "split", "square", "start", "stop",
    "store", "submit", "subtract", "sum", "summarise", "summarize", "swap", "switch", "sync",
    "tag", "take", "tally", "tell", "test", "throw", "toggle", "top", "total", "track",
    "trade", "transfer", "translate", "transform", "trim", "turn", "type", "unfollow",
    "unlock", "unmute", "unpin", "update", "upload", "use", "validate", "verify", "view",
    "wipe", "withdraw", "write", "zip", "work", "try", "act", "handle", "reach", "dive",
    "delve", "jot", "snag", "spin", "supply", "lift", "drive", "park", "refuel", "inflate",
    "heat", "cool", "warm", "dim", "adjust", "unblock", "ban", "favourite", "favorite",
    "bookmark", "star", "archive", "snooze", "pay", "wire", "refund", "bill", "quote", "rate",
    "reject", "escalate", "reassign", "reopen", "concatenate", "prepend", "strip", "lowercase",
    "uppercase", "encode", "decode", "hash", "encrypt", "decrypt", "compress", "decompress",
    "parse", "serialise", "serialize", "normalise", "normalize", "deduplicate", "aggregate",
    "pivot", "transpose", "describe"
})  # fmt: skip

#: closed-class words: never the head of a noun phrase a pronoun could refer back to
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its",
    "our", "their", "i", "me", "you", "he", "she", "it", "we", "they", "them", "us", "him",
    "myself", "yourself", "what", "which", "who", "whom", "whose", "where", "when", "why",
    "how", "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "do",
    "does", "did", "done", "will", "would", "shall", "should", "can", "could", "may", "might",
    "must", "not", "no", "yes", "and", "or", "but", "if", "then", "so", "of", "in", "on", "at",
    "to", "for", "with", "from", "by", "about", "into", "onto", "over", "under", "after",
    "before", "as", "than", "there", "here", "all", "any", "some", "each", "every", "both",
    "either", "neither", "also", "too", "just", "only", "very", "really", "please", "kindly",
    "now", "again", "once", "up", "down", "out", "off", "it's", "i'm", "i've", "i'd", "i'll",
    "let's", "don't", "can't", "won't", "you're", "you've", "you'd", "we're", "we've",
    "that's", "there's", "what's", "today", "tomorrow", "yesterday", "tonight", "while",
    "since", "until", "upon", "via", "per", "among", "between", "within", "without", "across",
    "through", "throughout", "during", "against", "toward", "towards", "behind", "beyond",
    "near", "around", "along", "despite", "inside", "outside", "above", "below", "beneath",
    "except", "everything", "everyone", "everybody", "something", "someone", "somebody",
    "anything", "anyone", "anybody", "nothing", "nobody", "whatever", "whichever"
})  # fmt: skip

#: words of request phrasing that carry no referent ("I'd like you to ...", "help me ...")
_REQUEST_WORDS = frozenset({
    "like", "love", "appreciate", "want", "need", "wish", "require", "able", "mind",
    "possible", "ahead", "sure", "greatly", "really", "kindly", "also", "then", "first",
    "next", "finally", "lastly", "okay", "ok", "oh", "hey", "hi", "hello", "thanks", "thank"
})  # fmt: skip

#: nouns "this"/"these" point at deictically (the folder I'm in, this year) - not anaphors
_DEICTIC_NOUNS = frozenset({
    "folder", "directory", "dir", "workspace", "account", "app", "application", "system",
    "machine", "computer", "device", "server", "session", "page", "car", "vehicle", "year",
    "month", "week", "weekend", "morning", "afternoon", "evening", "night", "time", "moment",
    "quarter", "season", "semester"
})  # fmt: skip

#: nouns of one kind, so that "that document" finds "report.txt" or "file" as its antecedent
_NOUN_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ["file", "document", "doc", "report", "note", "draft", "log", "copy", "attachment"], "file"
    ),
    **dict.fromkeys(["folder", "directory", "dir"], "folder"),
    **dict.fromkeys(["message", "text", "email", "mail", "dm", "reply"], "message"),
    **dict.fromkeys(["post", "tweet", "comment", "retweet"], "post"),
    **dict.fromkeys(["order", "trade", "purchase", "transaction"], "order"),
    **dict.fromkeys(["stock", "share", "company", "symbol", "ticker"], "stock"),
    **dict.fromkeys(["booking", "reservation", "flight", "trip", "journey"], "booking"),
    **dict.fromkeys(
        ["person", "user", "contact", "friend", "colleague", "recipient", "customer"], "person"
    ),
    **dict.fromkeys(
        [
            "number",
            "value",
            "amount",
            "figure",
            "sum",
            "total",
            "result",
            "answer",
            "price",
            "cost",
            "count",
        ],
        "number",
    ),
    **dict.fromkeys(
        ["location", "place", "city", "town", "destination", "spot", "airport"], "place"
    ),
}

#: tokens that show an antecedent of a kind (a file name, a ticker, a number, a name)
_KIND_EVIDENCE: dict[str, re.Pattern[str]] = {
    "file": re.compile(r"\w\.[A-Za-z]{1,5}\b"),
    "stock": re.compile(r"\b[A-Z]{2,5}\b"),
    "number": re.compile(r"\d"),
    "person": re.compile(r"(?<=[a-z,] )[A-Z][a-z]+|\bUSR\d+|\b[a-z]+_[a-z0-9_]+"),
    "place": re.compile(r"(?<=[a-z,] )[A-Z][a-z]+|\b[A-Z]{3}\b"),
}

_FILE_EXTENSIONS = frozenset({
    "txt", "md", "csv", "tsv", "json", "jsonl", "yaml", "yml", "xml", "html", "htm", "pdf",
    "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "rtf", "log", "ini", "cfg",
    "conf", "toml", "py", "js", "ts", "java", "c", "cpp", "h", "sh", "sql", "png", "jpg",
    "jpeg", "gif", "svg", "bmp", "mp3", "mp4", "wav", "zip", "tar", "gz", "tgz", "bak", "tmp",
    "dat", "bin"
})  # fmt: skip

# ----- patterns -----------------------------------------------------------------------------

_QUOTED = re.compile(
    r"(?<![\w'])'(?:[^']|'(?=\w))*'(?!\w)"  # 'value' (apostrophes inside allowed: user's)
    r'|"[^"]*"'
    r"|`[^`]*`"
    r"|‘(?:[^’]|’(?=\w))*’(?!\w)"
    r"|“[^”]*”"
)
_INNER_APOSTROPHE = re.compile(r"(?<=\w)’(?=\w)")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n\s*")
_CLAUSE_BREAK = re.compile(
    r"\s*[,;:()]+\s*|\s+[-–—]+\s+"
    r"|\s+(?:and then|and|then|but|or|so|plus|after that|afterwards)\s+",
    re.IGNORECASE,
)
_GO_AHEAD = re.compile(r"\s*(?:please\s+|just\s+)?go\s+ahead\s*$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9_][\w'-]*")
_REQUEST_MARKER = re.compile(
    r"""\b(?:
        please | kindly
      | (?:can|could|would|will|might|may)\s+(?:you|we|i)\b
      | if\s+you\s+(?:could|can|would|will|don't\s+mind)
      | (?:i'd|i\s+would|i'll|i\s+will)\s+(?:\w+\s+)?(?:like|love|appreciate|want|need|prefer|request)
      | would\s+(?:\w+\s+)?(?:like|love|appreciate)
      | i(?:'m|\s+am)\s+(?:\w+\s+)?(?:keen|eager|hoping|looking|trying|asking|requesting)\s+to
      | i\s+(?:\w+\s+)?(?:want|need|wish|require|request|must|have\s+to|ask)\s+
        (?:to|you|it|them|a|an|the|some|my|this|that|these|those|\d+)\b
      | help\s+me | let(?:'s|\s+us)\b | let\s+me\s+know | go\s+ahead | make\s+sure | be\s+sure
      | do\s+me\s+a\s+favou?r | (?:would|do)\s+you\s+mind
    )""",
    re.IGNORECASE | re.VERBOSE,
)
#: words that may precede the verb of an imperative clause ("First, ...", "Then just ...")
_LEAD_SKIP = frozenset({
    "first", "then", "next", "now", "also", "finally", "lastly", "afterwards", "additionally",
    "just", "simply", "please", "kindly", "and", "so", "ok", "okay", "oh", "go", "ahead",
    "quickly", "also", "still"
})  # fmt: skip
#: after an unknown first word, these make it read as a verb with its object ("Ignite the car")
_OBJECT_START = frozenset({
    "the", "a", "an", "my", "our", "your", "his", "her", "their", "its", "it", "them", "me",
    "us", "him", "this", "that", "these", "those", "all", "every", "each", "both", "some",
    "any"
})  # fmt: skip

#: a sentence opening that continues an earlier exchange
_CONNECTIVE = re.compile(
    r"""^(?:
        (?:furthermore|additionally|moreover|besides|lastly|finally|subsequently|afterwards?
          |secondly|thirdly|likewise|similarly|instead|otherwise|then|next|also|plus)\b(?!\s+(?:day|week|month|year|time|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b)
      | (?:and|but|or)\s
      | as\s+well\b | in\s+addition\b | on\s+top\s+of\s+that\b | after\s+that\b | apart\s+from\s+that\b
      | aside\s+from\s+that\b | other\s+than\s+that\b | beyond\s+that\b | in\s+that\s+case\b
      | (?:now\s+also|also\s+now)\b | oh,?\s+(?:and|also)\b | to\s+(?:conclude|finish|wrap\s+up)\b
      | i\s+mean\b | (?:sorry,?\s+)?i\s+(?:meant|should\s+(?:have\s+been|be)\s+(?:more\s+)?clear)\b
      | sorry,?\s+i\s+(?:mean|should\s+have|forgot)\b | actually, | (?:oh|ah|oops|whoops|wait)\b[\s,!.]
      | (?:since|now\s+that|once|with)\s+(?:that|this|it|everything|all\s+that)(?:'s|\s+is|\s+being)?
        \s+(?:all\s+|now\s+)?(?:sorted|done|settled|set|complete|completed|finished|arranged|handled)\b
      | (?:great|excellent|perfect|wonderful|awesome|thanks|thank\s+you)\s*[,!.]
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_BARE_CONNECTIVE = re.compile(
    r"furthermore|additionally|moreover|besides|lastly|finally|subsequently|afterwards?|secondly"
    r"|thirdly|likewise|similarly|instead|otherwise|then|next|also|plus",
    re.IGNORECASE,
)
_REQUEST_STARTS = frozenset({
    "i", "i'd", "i'm", "i've", "i'll", "we", "we'd", "we'll", "you", "can", "could", "would",
    "will", "please", "let's", "kindly", "just", "don't"
})  # fmt: skip
#: phrases that point at an earlier conversation, wherever they stand
_PRIOR_DISCOURSE = re.compile(
    r"""\b(?:
        as\s+(?:i|we|you)\s+(?:already\s+|just\s+)?(?:mentioned|said|discussed|noted|asked|
          requested|explained|agreed|told\s+you)
      | as\s+(?:mentioned|discussed|said|noted|stated)\s+(?:before|earlier|previously|above)
      | as\s+before | like\s+(?:before|last\s+time) | as\s+last\s+time
      | (?:afore|above)[-\s]?mentioned
      | mentioned\s+(?:earlier|before|previously|above)
      | previously\s+(?:given|provided|mentioned|shared|discussed|stated|supplied|used)
      | (?:i|we)\s+(?:told|gave|sent|showed)\s+you\s+(?:earlier|before|previously)
      | (?:i|we)\s+(?:just\s+)?(?:mentioned|discussed|talked\s+about)
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)
#: the assistant's own earlier actions, which a standalone question cannot have seen
_EARLIER_ACTION = re.compile(
    r"\b(?:you|we)(?:'ve|\s+have)?\s+(?:just|already|previously)\s+\w+"
    r"|\byou(?:'ve|\s+have)\s+(?:\w+ly\s+)?(?!to\b|got\b)\w+(?:ed|en|wn|ne|ught|ound|ade|ent)\b",
    re.IGNORECASE,
)
_DEMONSTRATIVE = re.compile(
    r"\b(this|that|these|those|the\s+same|the\s+previous|my\s+previous|the\s+prior"
    r"|the(?=\s+(?:answer|result|results|output|outcome)\b))\s+"
    r"((?:(?:first|last|second|third|new|old|other|same|earlier|specific|particular|latest|"
    r"two|three|four|\d+)\s+)?)([a-z][a-z_-]*)\b",
    re.IGNORECASE,
)
#: right after "this text", the value it points at follows ("this text: '...'")
_CATAPHORA = re.compile(r"[^.!?;,\x1a]{0,40}?[:(]?\s*['\"`‘“]\x1a")
#: "from that list": after a preposition, "that list" is a noun phrase, not "that" + verb
_PREPOSITION_BEFORE = re.compile(
    r"\b(?:from|in|of|on|to|into|with|for|at|about|by|onto|under|inside|within)\s+$"
)
#: words after which "that" opens a clause ("make sure that ...") rather than pointing
_CONJUNCTION_HOSTS = frozenset({
    "sure", "ensure", "check", "verify", "confirm", "say", "says", "said", "think", "know",
    "believe", "note", "notice", "mean", "hope", "realize", "realise", "assume", "guess",
    "see", "prove", "show", "tell", "told", "given", "so", "such", "now", "provided", "except"
})  # fmt: skip
_PRONOUN_OBJECT = re.compile(r"\b(it|them|that|this|those)\b(?!'|\s+(?:is|was|seems|looks))")
_AGAIN = re.compile(r"\b(?:again|once\s+more|one\s+more\s+time)\b", re.IGNORECASE)
_SHARES = re.compile(
    r"\b(\d[\d,]*|a\s+hundred|a\s+few|some)\s+(?:([A-Za-z\x1a'-]+)\s+)?(shares?|units?)\b"
    r"(\s+(?:of|in)\b)?",
    re.IGNORECASE,
)

#: a run of 1-8 words said twice in a row, separated by blanks only ("the message the message")
_REPEATED = re.compile(
    r"(?<![\w'-])([\w'-]+(?:[ \t]+[\w'-]+){0,7})[ \t]+\1(?![\w'-])", re.IGNORECASE
)
_REPEATED_WORD_OK = frozenset(
    ["that", "had", "very", "so", "really", "bye", "ha", "no", "yes", "do", "is"]
)
_SLOT = re.compile(
    r"\{\{?\s*[A-Za-z_][\w.]*\s*\}\}?|\{%.*?%\}|\$\{\w+\}"
    r"|<[A-Za-z_][\w-]*(?:\s[A-Za-z_][\w-]*){0,3}>"
    r"|\[(?:\s*(?:\.\.\.|…)\s*|[A-Za-z_][\w -]{0,40})\]"
)
_NONE_VALUE = re.compile(r"(?<=[a-z,:=] )(?:None|NULL|NaN)\b(?!\s+of\b)|\b(?:null|undefined)\b")
_DOUBLE_ARTICLE = re.compile(r"\b(?:a|an|the)\s+(?:a|an|the)\b")
_GLUED_SENTENCE = re.compile(r"\b(?:and|or|then|but)\s+(?:Could|Can|Would|Will|Please|Should)\b")
_DOUBLED_PUNCT = re.compile(
    r",\s*,|;\s*;|(?<=\w)\.\.(?![.\w])|(?<=\w)\.\s+\.(?![.\w])|[,;:]\s*\.(?!\.)|(?<![.\w])\.,"
)
_GLUED_QUOTES = re.compile(r"(?<=\w)''|''(?=\w)")
_STRAY_OPEN = re.compile(r"(?<![\w'])'(?=\w)")
_STRAY_CURLY = re.compile(r"(?<![\w\x1a])’")
_STRAY_CLOSE = re.compile(r"(?<=[A-Za-rt-z0-9])'(?=[\s.,;:!?)]|$)")

_MENTION_OR_TAG = re.compile(r"^([@#])([A-Za-z0-9_][\w.-]*)$")
_FILE_NAME = re.compile(r"^(?:.*/)?([\w .-]*\w)\.([A-Za-z][A-Za-z0-9]{0,4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NAME_LIKE = re.compile(r"[_\d]|[a-z][A-Z]")
_NAME_CUES = frozenset({
    "named", "called", "titled", "name", "file", "folder", "directory", "document", "tag",
    "tags", "hashtag", "hashtags", "tagged", "tagging", "mention", "mentions", "mentioning",
    "mentioned", "user", "username", "handle", "account"
})  # fmt: skip


# ----- analysis of one question -------------------------------------------------------------


def _mask_quotes(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The question with the inside of every quoted span blanked (same length), and the spans."""
    spans = [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    if not spans:
        return text, spans
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last : start + 1])
        parts.append("\x1a" * (end - start - 2))
        parts.append(text[end - 1])
        last = end
    parts.append(text[last:])
    return "".join(parts), spans


def _is_verb_form(word: str) -> bool:
    """A verb in any common inflection (sends, sent-like -ed forms, sending)."""
    if word in VERBS:
        return True
    for suffix, additions in (("ing", ("", "e")), ("ed", ("", "e")), ("es", ("",)), ("s", ("",))):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            if any(stem + extra in VERBS for extra in additions):
                return True
            if len(stem) > 2 and stem[-1] == stem[-2] and stem[:-1] in VERBS:  # stopped
                return True
            if suffix == "ed" and stem.endswith("i") and stem[:-1] + "y" in VERBS:  # copied
                return True
    return False


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "shes", "ches")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass
class _Clause:
    start: int
    end: int
    request: bool


@dataclass
class _Sentence:
    start: int
    end: int
    text: str
    request: bool
    clauses: list[_Clause] = field(default_factory=list)


class QuestionText:
    """One pass over a question: quotes masked, sentences and clauses found, requests marked."""

    def __init__(self, question: str) -> None:
        self.original = question
        prose = _INNER_APOSTROPHE.sub("'", question)
        self.masked, self.quotes = _mask_quotes(prose)
        self.lower = self.masked.lower()
        self.sentences = list(self._split())

    def _split(self) -> Iterator[_Sentence]:
        start = 0
        bounds = [(m.start(), m.end()) for m in _SENTENCE_BREAK.finditer(self.masked)]
        bounds.append((len(self.masked), len(self.masked)))
        for stop, resume in bounds:
            text = self.masked[start:stop].strip()
            if text:
                offset = start + (
                    len(self.masked[start:stop]) - len(self.masked[start:stop].lstrip())
                )
                yield self._sentence(offset, offset + len(text), text)
            start = resume

    def _sentence(self, start: int, end: int, text: str) -> _Sentence:
        clauses: list[_Clause] = []
        position = 0
        for match in [*_CLAUSE_BREAK.finditer(text), None]:
            stop = match.start() if match else len(text)
            piece = text[position:stop]
            if piece.strip():
                asks = _imperative(piece) or bool(_REQUEST_MARKER.search(piece))
                if _GO_AHEAD.match(piece):
                    asks = False  # "go ahead and ...": the request is the next clause
                clauses.append(_Clause(start + position, start + stop, asks))
            position = match.end() if match else len(text)
        asks = text.rstrip("\"')]\x1a ").endswith("?") or bool(_REQUEST_MARKER.search(text))
        return _Sentence(start, end, text, asks or any(c.request for c in clauses), clauses)

    @cached_property
    def request_spans(self) -> list[tuple[int, int]]:
        spans = [(c.start, c.end) for s in self.sentences for c in s.clauses if c.request]
        spans += [(s.start, s.end) for s in self.sentences if s.request]
        return spans

    @property
    def asks_anything(self) -> bool:
        return any(sentence.request for sentence in self.sentences)

    def request_before(self, position: int) -> bool:
        """Whether a request clause ends before ``position`` (something was asked earlier)."""
        return any(end <= position for _, end in self.request_spans)

    def statement_before(self, position: int) -> bool:
        """Whether an earlier sentence (not the one at ``position``) has content words."""
        return any(
            s.end <= position and any(True for _ in _content_words(s.text)) for s in self.sentences
        )

    def inside_first_request(self, position: int) -> bool:
        starts = [start for start, end in self.request_spans if start <= position < end]
        return bool(starts) and not self.request_before(position)

    def span(self, start: int, end: int, pad: int = 0) -> str:
        return self.original[max(0, start - pad) : end + pad].strip()


def _imperative(clause: str) -> bool:
    words = [w.lower() for w in _WORD.findall(clause)]
    index = 0
    while (
        index < len(words)
        and words[index] not in VERBS
        and (words[index] in _LEAD_SKIP or (words[index].endswith("ly") and len(words[index]) > 4))
    ):
        index += 1
    if index >= len(words):
        return False
    first = words[index]
    if first in VERBS:
        return True
    following = words[index + 1] if index + 1 < len(words) else ""
    return (
        first.isalpha()
        and first not in FUNCTION_WORDS
        and not first.endswith(("s", "ed", "ing"))
        and following in _OBJECT_START
    )


def _content_words(text: str) -> Iterator[str]:
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered in FUNCTION_WORDS or lowered in _REQUEST_WORDS or _is_verb_form(lowered):
            continue
        if lowered.endswith("ly") and len(lowered) > 4:
            continue
        yield lowered


def _has_antecedent(prefix: str, noun: str | None = None) -> bool:
    """Whether ``prefix`` offers something a reference could point back to.

    With a ``noun``: the noun itself (or one of its kind: a file name for "that document"),
    or any quoted value. Without: any content word, number or quoted value at all.
    """
    if "\x1a" in prefix or "''" in prefix or '""' in prefix:
        return True
    if noun is None:
        return any(True for _ in _content_words(prefix))
    lowered = prefix.lower()
    kind = _NOUN_KINDS.get(noun)
    candidates = {noun} | ({n for n, k in _NOUN_KINDS.items() if k == kind} if kind else set())
    if any(re.search(rf"\b{re.escape(c)}", lowered) for c in candidates):
        return True
    pattern = _KIND_EVIDENCE.get(kind or "")
    return bool(pattern and pattern.search(prefix))


# ----- the checks ---------------------------------------------------------------------------


def _reject(code: RejectionCode, message: str, span: str, **extra: Any) -> Reject:
    output: dict[str, Any] = {"span": span, **extra}
    return Reject(code, message, Evidence(output=output))


def _repeated_phrase(text: QuestionText) -> Reject | None:
    for match in _REPEATED.finditer(text.masked):
        phrase = match.group(1)
        words = phrase.split()
        if len(words) == 1 and (words[0].lower() in _REPEATED_WORD_OK or not words[0].isalpha()):
            continue
        what = "word" if len(words) == 1 else f"{len(words)}-word phrase"
        return _reject(
            RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
            f"the {what} {' '.join(words)!r} is repeated back to back: "
            f"{text.span(match.start(), match.end(), 12)!r}",
            text.span(match.start(), match.end()),
        )
    return None


def _string_arguments(ctx: ValidationContext) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for call in ctx.task.calls:
        walk(call.arguments)
    return found


def check_template_artefact(ctx: ValidationContext, text: QuestionText) -> None:
    repeated = _repeated_phrase(text)
    if repeated:
        raise repeated
    arguments: list[str] | None = None
    for match in _SLOT.finditer(text.original):
        if arguments is None:
            arguments = _string_arguments(ctx)
        if any(match.group() in argument for argument in arguments):
            continue  # the call really takes this text (a template, a tag): not a leftover
        raise _reject(
            RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
            f"unfilled template slot {match.group()!r} in "
            f"{text.span(match.start(), match.end(), 20)!r}",
            match.group(),
        )
    checks: tuple[tuple[re.Pattern[str], str, str], ...] = (
        (_NONE_VALUE, text.masked, "a null value written into the prose"),
        (_GLUED_QUOTES, text.original, "empty or glued quotes"),
        (_DOUBLED_PUNCT, text.masked, "doubled punctuation"),
        (_DOUBLE_ARTICLE, text.masked, "two articles in a row"),
        (_GLUED_SENTENCE, text.masked, "a sentence start glued into another sentence"),
    )
    for pattern, haystack, what in checks:
        match = pattern.search(haystack)
        if match is None:
            continue
        if pattern is _NONE_VALUE:
            arguments = arguments if arguments is not None else _string_arguments(ctx)
            if _has_null_argument(ctx) or match.group() in arguments:
                continue
        raise _reject(
            RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
            f"{what}: {text.span(match.start(), match.end(), 20)!r}",
            text.span(match.start(), match.end(), 3),
        )
    stray = _stray_quote(text)
    if stray is not None:
        raise _reject(
            RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
            f"unbalanced quote {text.original[stray]!r} in {text.span(stray, stray + 1, 25)!r}",
            text.span(stray, stray + 1, 12),
        )


def _has_null_argument(ctx: ValidationContext) -> bool:
    return any(
        value is None or value in ("null", "None")
        for call in ctx.task.calls
        for value in call.arguments.values()
    )


def _stray_quote(text: QuestionText) -> int | None:
    """Position of a quote mark that opens or closes nothing (apostrophes excepted)."""
    outside = text.masked
    for start, end in text.quotes:
        outside = outside[:start] + " " * (end - start) + outside[end:]
    for mark in ('"', "`", "“", "”", "‘"):
        index = outside.find(mark)
        if index != -1 and not (mark == '"' and index and outside[index - 1].isdigit()):
            return index
    for pattern in (_STRAY_OPEN, _STRAY_CLOSE, _STRAY_CURLY):
        match = pattern.search(outside)
        if match:
            return match.start()
    return None


def check_context_dependent(ctx: ValidationContext, text: QuestionText) -> None:
    code = RejectionCode.QUESTION_CONTEXT_DEPENDENT
    for sentence in text.sentences:
        match = _CONNECTIVE.match(sentence.text)
        if match and _BARE_CONNECTIVE.fullmatch(match.group()):
            rest = _WORD.findall(sentence.text[match.end() : match.end() + 30])
            if sentence.text[match.end() : match.end() + 1] != "," and not (
                rest and (rest[0].lower() in VERBS or rest[0].lower() in _REQUEST_STARTS)
            ):
                match = None  # "Also known as ...", "Then and now": not a connective
        if match and not text.request_before(sentence.start):
            opener = match.group().strip(" ,!.")
            where = "opens with" if sentence.start == 0 else "has a sentence opening with"
            raise _reject(
                code,
                f"the question {where} {opener!r}, which continues an earlier exchange, but "
                f"nothing was asked before it: {text.span(sentence.start, sentence.end)[:80]!r}",
                opener,
            )
    match = _PRIOR_DISCOURSE.search(text.masked)
    if match:
        raise _reject(
            code,
            f"{match.group()!r} refers to an earlier conversation the task does not contain",
            match.group(),
        )
    for match in _EARLIER_ACTION.finditer(text.masked):
        if not text.request_before(match.start()):
            raise _reject(
                code,
                f"{match.group()!r} presumes something already happened, but the question "
                "has asked for nothing before it",
                match.group(),
            )
    _check_references(text)
    _check_unnamed_shares(ctx, text)


def _check_references(text: QuestionText) -> None:
    code = RejectionCode.QUESTION_CONTEXT_DEPENDENT
    for match in _DEMONSTRATIVE.finditer(text.masked):
        word, noun = match.group(1).lower(), match.group(3).lower()
        if text.request_before(match.start()) or noun in FUNCTION_WORDS:
            continue
        if word in ("that", "this", "these", "those") and text.statement_before(match.start()):
            continue  # an earlier sentence set the scene ("those doors" of the car it described)
        if word in ("that", "this"):
            if (
                (_is_verb_form(noun) and not _determiner_that(text, match.start()))
                or (noun.endswith("ed") and len(noun) > 4)  # "have this rectified"
                or noun != _singular(noun)
                or text.masked[match.start(3)].isupper()
                or (word == "this" and noun in _DEICTIC_NOUNS)
            ):
                continue  # "make sure that ...", "the file that contains", "this folder"
        elif word in ("these", "those"):
            if noun == _singular(noun) and noun not in ("people", "data"):
                continue
            if word == "these" and _singular(noun) in _DEICTIC_NOUNS:
                continue
        else:  # the same / the previous / the result
            after = text.lower[match.end() : match.end() + 6]
            if after.startswith((" as ", " of ", " from ", " for ")):
                continue  # "the same name as ...", "the result of 3 + 4": not a reference
        if _has_antecedent(text.masked[: match.start()], _singular(noun)):
            continue
        if _CATAPHORA.match(text.masked, match.end()):
            continue  # "this text: '...'": the value follows
        raise _reject(
            code,
            f"{match.group()!r} refers back to something the question never introduces",
            text.span(match.start(), match.end()),
        )
    for match in _PRONOUN_OBJECT.finditer(text.lower):
        start = match.start()
        if text.request_before(start) or _has_antecedent(text.masked[:start]):
            continue
        before = _WORD.findall(text.lower[:start])
        if not before or before[-1] in ("make", "keep", "let"):
            continue
        if not (_is_verb_form(before[-1]) or before[-1] in ("need", "want", "needs", "wants")):
            continue
        after = text.lower[match.end() :].lstrip()
        if match.group(1) in ("that", "this", "those") and after[:1].isalpha():
            if not after.startswith(("for ", "to ", "into ", "in ", "on ", "with ", "from ")):
                continue  # "check that the doors ...": a conjunction or determiner
        if after.startswith(("if ", "when ", "that ", ":")):
            continue  # "I'd appreciate it if ...", "do this: ...": no earlier referent needed
        raise _reject(
            code,
            f"{match.group(1)!r} in {text.span(start - 20, match.end(), 0)!r} has no antecedent "
            "in the question",
            text.span(start - 20, match.end()),
        )
    for match in _AGAIN.finditer(text.masked):
        if text.inside_first_request(match.start()):
            raise _reject(
                code,
                f"{match.group()!r} in the first request presumes it was done before: "
                f"{text.span(match.start() - 30, match.end())!r}",
                match.group(),
            )


def _determiner_that(text: QuestionText, start: int) -> bool:
    """Whether "that"/"this" at ``start`` points at a noun ("from that list", "delete that
    file") rather than opening a clause ("the file that contains", "ensure that files ...")."""
    if _PREPOSITION_BEFORE.search(text.lower, 0, start):
        return True
    before = _WORD.findall(text.lower[max(0, start - 30) : start])
    return bool(before) and before[-1] in VERBS and before[-1] not in _CONJUNCTION_HOSTS


def _check_unnamed_shares(ctx: ValidationContext, text: QuestionText) -> None:
    """ "I want 100 shares." when the calls need a stock the question never names."""
    symbols: list[str] = []
    bound = False
    for call in ctx.task.calls:
        try:
            _, spec = resolve_tool(call.tool)
        except ToolError:
            continue
        for name, sem in spec.param_types.items():
            if sem in (Sem.STOCK_SYMBOL, Sem.COMPANY_NAME) and name in call.arguments:
                if name in call.bindings or any(k.startswith(name + ".") for k in call.bindings):
                    bound = True
                value = call.arguments[name]
                symbols += [value] if isinstance(value, str) else []
                symbols += (
                    [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
                )
    if not symbols or bound:
        return
    if any(re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text.original, re.I) for s in symbols):
        return
    for match in _SHARES.finditer(text.masked):
        modifier = match.group(2) or ""
        if match.group(4) or "\x1a" in modifier or (modifier[:1].isupper()):
            continue  # "shares of X", "100 'NVDA' shares", "100 Apple shares"
        if re.search(r"\b[A-Z]{2,5}\b", text.masked.replace("I ", "")):
            continue  # a ticker stands somewhere in the question
        raise _reject(
            RejectionCode.QUESTION_CONTEXT_DEPENDENT,
            f"{match.group().strip()!r} does not say which stock; the calls trade "
            f"{', '.join(sorted(set(symbols)))}, which the question never names",
            match.group().strip(),
        )


def check_no_request(ctx: ValidationContext, text: QuestionText) -> None:
    if text.asks_anything:
        return
    raise _reject(
        RejectionCode.QUESTION_NO_REQUEST,
        "no sentence of the question asks for anything (no question mark, imperative or "
        f"request such as 'please' / 'could you' / 'I'd like'): {text.original[:120]!r}",
        text.original[:200],
    )


def _format_variants(value: str, sem: Sem | None) -> tuple[str, str] | None:
    """(what is lost, the value without it) for a value that carries a format marker."""
    marked = _MENTION_OR_TAG.match(value)
    if marked and sem in (None, Sem.TAG, Sem.USER_NAME, Sem.TEXT, Sem.KEYWORD):
        return ("the leading " + marked.group(1), marked.group(2))
    named = _FILE_NAME.match(value)
    if (
        named
        and named.group(2).lower() in _FILE_EXTENSIONS
        and sem in (None, Sem.FILE_NAME, Sem.PATH, Sem.DOCUMENT_ID, Sem.TITLE)
    ):
        return (f"the extension .{named.group(2)}", named.group(1))
    return None


def _date_lost(value: str, question: str) -> str | None:
    """An ISO date written in the question with its separators stripped (``20240301``)."""
    date = _ISO_DATE.match(value)
    if not date or value in question:
        return None
    year, month, day = date.groups()
    pattern = rf"(?<!\d){year}(?:[/. _]?){month}(?:[/. _]?){day}(?!\d)"
    found = re.search(pattern, question)
    return found.group() if found else None


def _literal_arguments(ctx: ValidationContext) -> Iterator[tuple[int, str, str, Sem | None]]:
    for index, call in enumerate(ctx.task.calls):
        try:
            _, spec = resolve_tool(call.tool)
        except ToolError:
            continue
        for name, value in call.arguments.items():
            if name in call.bindings:
                continue
            sem = spec.param_types.get(name)
            items = value if isinstance(value, list) else [value]
            for position, item in enumerate(items):
                if isinstance(item, str) and f"{name}.{position}" not in call.bindings:
                    yield index, name, item, sem


def check_format_lost(ctx: ValidationContext, text: QuestionText) -> None:
    question = text.original
    for index, name, value, sem in _literal_arguments(ctx):
        call = ctx.task.calls[index]
        date = _date_lost(value, question) if sem in (None, Sem.DATE) else None
        if date:
            raise Reject(
                RejectionCode.QUESTION_FORMAT_LOST,
                f"step {call.id} passes {name}={value!r}, but the question writes the date as "
                f"{date!r}",
                Evidence(step_id=call.id, output={"argument": name, "value": value, "span": date}),
            )
        variants = _format_variants(value, sem)
        if variants is None or re.search(
            rf"(?<!\w){re.escape(value)}(?!\w)", question, re.IGNORECASE
        ):
            continue
        lost, bare = variants
        found = _lost_mention(ctx, text, index, value, bare)
        if found is None:
            continue
        raise Reject(
            RejectionCode.QUESTION_FORMAT_LOST,
            f"step {call.id} passes {name}={value!r}, but the question only says {bare!r} "
            f"({lost} is lost): {text.span(found.start() - 20, found.end() + 10)!r}",
            Evidence(step_id=call.id, output={"argument": name, "value": value, "span": bare}),
        )


def _lost_mention(
    ctx: ValidationContext, text: QuestionText, index: int, value: str, bare: str
) -> re.Match[str] | None:
    """Where the question names ``bare`` as the value itself (not as an ordinary word).

    An occurrence counts when it is introduced as a name (quoted, "named x", "tag x"), or when
    it looks like a name (``q1_summary``, ``ProjectUpdate``) and no earlier result shows the
    exact value; "the proposal document" for ``proposal.docx`` is an ordinary word.
    """
    pattern = re.compile(rf"(?<![\w@#.]){re.escape(bare)}(?![\w]|\.\w)", re.IGNORECASE)
    name_like = bool(_NAME_LIKE.search(bare))
    for found in pattern.finditer(text.original):
        if _cued(text, found.start()):
            return found
        if name_like and not _observed_before(ctx, index, value):
            return found
    return None


def _cued(text: QuestionText, position: int) -> bool:
    """The word at ``position`` is quoted or introduced as a name ("named x", "tag x")."""
    if position and text.original[position - 1] in "'\"`‘“":
        return True
    before = _WORD.findall(text.lower[max(0, position - 30) : position])[-2:]
    return any(word in _NAME_CUES for word in before)


def _observed_before(ctx: ValidationContext, index: int, value: str) -> bool:
    try:
        traces = ctx.traces
    except Exception:  # noqa: BLE001 - replay problems are the execution checks' business
        return False
    needle = value.lower()
    for step in traces[:index]:
        if needle in _flat_text(step.result):
            return True
    return False


def _flat_text(value: Any) -> str:
    parts: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, str):
            parts.append(item.lower())
        elif isinstance(item, list):
            for element in item:
                walk(element)
        elif isinstance(item, dict):
            for key, element in item.items():
                parts.append(str(key).lower())
                walk(element)

    walk(value)
    return "\n".join(parts)


_CHECKS = (check_template_artefact, check_context_dependent, check_no_request, check_format_lost)


def check_question(ctx: ValidationContext) -> None:
    """Reject a question that presumes context, asks nothing, carries generator artefacts or
    drops the format of a literal; the first failure is the verdict, the rest its evidence."""
    text = QuestionText(ctx.task.question)
    verdict: Reject | None = None
    for check in _CHECKS:
        try:
            check(ctx, text)
        except Reject as failure:
            if verdict is None:
                verdict = failure
            else:
                verdict.evidence.also_failed.setdefault(failure.code.value, failure.message)
    if verdict is not None:
        raise verdict
