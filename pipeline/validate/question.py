"""Question checks: the question stands on its own, asks for something and reads cleanly.

The checks read the text (plus, for ``format_lost``, the calls' literal arguments). Quoted
spans (``'...'``, ``"..."``, backticks, curly quotes) are values, not prose: their insides are
masked (same length, so offsets still point into the question) before the prose is read, so a
message text such as ``'Splash silence again'`` is never taken for the question's own words.
A question is analysed once (:class:`QuestionText`: words, sentences, clauses, which of them ask
for something) and every check reuses that analysis; patterns are precompiled, run on the
lower-cased text without ``re.IGNORECASE``, and the rarer ones sit behind substring tests, so
the four checks together cost about 0.1 ms per task (some 7% of the chain).

``check_question`` runs the four checks; the first that fails is the verdict, and what the
others find is added to the evidence as ``also_failed``:

1. ``question.template_artefact``: generator leftovers: a phrase (or word) repeated back to
   back, an unfilled slot (``{x}``, ``{{ x }}``, ``<placeholder>``, ``[...]``, ``None`` as a
   value), empty or glued quotes, an unbalanced quote (``the meadow' 'id'``, ``'Archive``),
   doubled punctuation (``,,``, ``..``, ``. .``), two articles in a row (``a the``), a sentence
   start glued into another sentence (``... folder and Could you ...``);
2. ``question.context_dependent``: the question leans on a conversation that is not there: a
   sentence opens with a connective or reaction that continues earlier discourse
   (``Furthermore,``, ``Lastly,``, ``Oh, and``, ``I mean``, ``Great,``) although nothing was
   asked before it; it refers to what was never said (``as I mentioned``, ``the
   aforementioned``, ``previously given``) or to what the assistant already did (``now that
   you've gathered``); or, before any earlier request could supply a referent, it uses a
   demonstrative (``that file``), ``the same X``, ``the previous X``, ``the result``,
   ``again`` or a bare ``it``/``them`` whose antecedent the question does not contain; or it
   trades a number of shares without ever naming the stock ("I want 100 shares.");
3. ``question.no_request``: no sentence asks for anything: no ``?``, no imperative, no request
   marker (``please``, ``could you``, ``I'd like``, ``I need to``, ``let's``, ``help me``);
4. ``question.format_lost``: a literal argument (not a binding) that carries a format marker
   (a leading ``@`` or ``#``, a file extension, an ISO date) appears in the question only
   without it: ``@kim`` as "mentioning kim", ``report.txt`` as "the file named report",
   ``2024-03-01`` as ``20240301``; or, the other way round, a mention or tag the question
   writes only with its marker (``@alice``) passed in a list without it (``["alice"]``).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.conditions import CONDITION, alternatives, names_call, place_calls, sentences
from pipeline.envs import ToolError, get_env_class, resolve_tool
from pipeline.jsontree import keys, scalars
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
    "heat", "cool", "warm", "dim", "unblock", "ban", "favourite", "favorite",
    "bookmark", "star", "snooze", "pay", "wire", "refund", "bill", "quote", "rate",
    "reject", "escalate", "reassign", "reopen", "concatenate", "prepend", "strip", "lowercase",
    "uppercase", "encode", "decode", "hash", "encrypt", "decrypt", "compress", "decompress",
    "parse", "serialise", "serialize", "normalise", "normalize", "deduplicate", "aggregate",
    "pivot", "transpose"
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

# ----- patterns (run on the lower-cased, quote-masked text unless noted) -------------------

_QUOTED = re.compile(
    r"(?<![\w'])'(?:[^']|'(?=\w))*'(?!\w)"  # 'value' (apostrophes inside allowed: user's)
    r'|"[^"]*"'
    r"|`[^`]*`"
    r"|‘(?:[^’]|’(?=\w))*’(?!\w)"
    r"|“[^”]*”"
)
_MASK = "\x1a"
_TRAILING = "\"')] " + _MASK
_INNER_APOSTROPHE = re.compile(r"(?<=\w)’(?=\w)")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n\s*")
_CLAUSE_BREAK = re.compile(
    r"\s*[,;:()]+\s*|\s+[-–—]+\s+|\s+(?:and then|and|then|but|or|so|plus|after that"
    r"|afterwards)\s+"
)
_GO_AHEAD = re.compile(r"\s*(?:please\s+|just\s+)?go\s+ahead\s*$")
_WORD = re.compile(r"[A-Za-z0-9_][\w'-]*")
_REQUEST_MARKER = re.compile(
    r"""\b(?:
        please | kindly
      | (?:can|could|would|will|might|may)\s+(?:you|we|i)\b
      | if\s+you\s+(?:could|can|would|will|don't\s+mind)
      | (?:i'd|i\s+would|i'll|i\s+will)\s+(?:\w+\s+)?
        (?:like|love|appreciate|want|need|prefer|request)
      | would\s+(?:\w+\s+)?(?:like|love|appreciate)
      | i(?:'m|\s+am)\s+(?:\w+\s+)?(?:keen|eager|hoping|looking|trying|asking|requesting)\s+to
      | i\s+(?:\w+\s+)?(?:want|need|wish|require|request|must|have\s+to|ask)\s+
        (?:to|you|it|them|a|an|the|some|my|this|that|these|those|\d+)\b
      | help\s+me | let(?:'s|\s+us)\b | let\s+me\s+know | go\s+ahead | make\s+sure | be\s+sure
      | do\s+me\s+a\s+favou?r | (?:would|do)\s+you\s+mind
    )""",
    re.VERBOSE,
)
#: words that may precede the verb of an imperative clause ("First, ...", "Then just ...")
_LEAD_SKIP = frozenset({
    "first", "then", "next", "now", "also", "finally", "lastly", "afterwards", "additionally",
    "just", "simply", "please", "kindly", "and", "so", "ok", "okay", "oh", "go", "ahead",
    "quickly", "still",
})  # fmt: skip
#: after an unknown first word, these make it read as a verb with its object ("Ignite the car")
_OBJECT_START = frozenset({
    "the", "a", "an", "my", "our", "your", "his", "her", "their", "its", "it", "them", "me",
    "us", "him", "this", "that", "these", "those", "all", "every", "each", "both", "some",
    "any",
})  # fmt: skip

_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
#: a sentence opening that continues an earlier exchange (or reacts to one)
_CONNECTIVE = re.compile(
    rf"""(?:
        (?:furthermore|additionally|moreover|besides|lastly|finally|subsequently|afterwards?
          |secondly|thirdly|likewise|similarly|instead|otherwise|then|next|also|plus)\b
          (?!\s+(?:day|week|month|year|time|{_WEEKDAYS})\b)
      | (?:and|but|or)\s
      | as\s+well\b | in\s+addition\b | on\s+top\s+of\s+that\b | after\s+that\b
      | (?:apart|aside)\s+from\s+that\b | other\s+than\s+that\b | beyond\s+that\b
      | in\s+that\s+case\b | (?:now\s+also|also\s+now)\b | oh,?\s+(?:and|also)\b
      | to\s+(?:conclude|finish|wrap\s+up)\b | i\s+mean\b
      | (?:sorry,?\s+)?i\s+(?:meant|should\s+(?:have\s+been|be)\s+(?:more\s+)?clear)\b
      | sorry,?\s+i\s+(?:mean|should\s+have|forgot)\b | actually,
      | (?:oh|ah|oops|whoops|wait)\b[\s,!.]
      | (?:since|now\s+that|once|with)\s+(?:that|this|it|everything|all\s+that)
        (?:'s|\s+is|\s+being)?\s+(?:all\s+|now\s+)?
        (?:sorted|done|settled|set|complete|completed|finished|arranged|handled)\b
      | (?:great|excellent|perfect|wonderful|awesome|thanks|thank\s+you)\s*[,!.]
      | (?:after|following|upon\s+completion\s+of)\s+(?:the|that|this|those|these)\s
        [^,.;!?]{{1,40}},
      | with\s+(?:the|that|this|those|these|my|our)\s
        [^,.;!?]{{0,30}}?\w+(?:ed|ing)\b[^,.;!?]{{0,10}},
      | upon\s+\w+ing\b
    )""",
    re.VERBOSE,
)
_BARE_CONNECTIVE = re.compile(
    r"furthermore|additionally|moreover|besides|lastly|finally|subsequently|afterwards?|secondly"
    r"|thirdly|likewise|similarly|instead|otherwise|then|next|also|plus"
)
#: after a bare connective ("Then", "Also") one of these, or a verb, starts a request
_REQUEST_STARTS = frozenset({
    "i", "i'd", "i'm", "i've", "i'll", "we", "we'd", "we'll", "you", "can", "could", "would",
    "will", "please", "let's", "kindly", "just", "don't",
})  # fmt: skip
#: phrases that point at an earlier conversation, wherever they stand
_PRIOR_DISCOURSE = re.compile(
    r"""\b(?:
        as\s+(?:i|we|you)\s+(?:already\s+|just\s+)?(?:mentioned|said|discussed|noted|asked
          |requested|explained|agreed|told\s+you)
      | as\s+(?:mentioned|discussed|said|noted|stated)\s+(?:before|earlier|previously|above)
      | as\s+before | like\s+(?:before|last\s+time) | as\s+last\s+time
      | (?:afore|above)[-\s]?mentioned
      | mentioned\s+(?:earlier|before|previously|above)
      | previously\s+(?:given|provided|mentioned|shared|discussed|stated|supplied|used)
      | (?:i|we)\s+(?:told|gave|sent|showed)\s+you\s+(?:earlier|before|previously)
      | (?:i|we)\s+(?:just\s+)?(?:mentioned|discussed|talked\s+about)
    )\b""",
    re.VERBOSE,
)
_PRIOR_HINTS = (
    "mention", "said", "discuss", "noted", "asked", "request", "explain", "agreed", "told",
    "before", "previously", "last time", "gave you", "sent you", "showed you",
)  # fmt: skip
#: a reply to work the assistant has shown ("Wonderful, with the tank now full, ...") or a
#: correction of an earlier request ("Oh I should have been more clear"): a one-shot question
#: has seen no work and made no earlier request
_ACKNOWLEDGEMENT = re.compile(
    r"(?:great|wonderful|perfect|excellent|awesome|fantastic|splendid|brilliant|superb"
    r"|terrific|marvell?ous|thanks|thank\s+you|nice\s+work|good\s+job|well\s+done)\b"
)
_SELF_CORRECTION = re.compile(
    r"\bi\s+should\s+have\s+(?:been|said|mentioned|told|specified|clarified)\b"
    r"|\bi\s+forgot\s+to\s+(?:mention|say|tell|specify)\b"
)
#: the assistant's own earlier actions, which a standalone question cannot have seen
_EARLIER_ACTION = re.compile(
    r"\b(?:you|we)(?:'ve|\s+have)?\s+(?:just|already|previously)\s+\w+"
    r"|\byou(?:'ve|\s+have)\s+(?:\w+ly\s+)?(?!to\b|got\b)\w+(?:ed|en|wn|ne|ught|ound|ade|ent)\b"
)
_DEMONSTRATIVE = re.compile(
    r"\b(this|that|these|those|the\s+same|the\s+previous|my\s+previous|the\s+prior"
    r"|the(?=\s+(?:answer|result|results|output|outcome)\b))\s+"
    r"((?:(?:first|last|second|third|new|old|other|same|earlier|specific|particular|latest|"
    r"two|three|four|\d+)\s+)?)([a-z][a-z_-]*)\b"
)
#: right after "this text", the value it points at follows ("this text: '...'")
_CATAPHORA = re.compile(rf"[^.!?;,{_MASK}]{{0,40}}?[:(]?\s*['\"`‘“]{_MASK}")
#: "from that list": after a preposition, "that list" is a noun phrase, not "that" + verb
_PREPOSITION_BEFORE = re.compile(
    r"\b(?:from|in|of|on|to|into|with|for|at|about|by|onto|under|inside|within)\s+$"
)
#: words after which "that" opens a clause ("make sure that ...") rather than pointing
_CONJUNCTION_HOSTS = frozenset({
    "sure", "ensure", "check", "verify", "confirm", "say", "says", "said", "think", "know",
    "believe", "note", "notice", "mean", "hope", "realize", "realise", "assume", "guess",
    "see", "prove", "show", "tell", "told", "given", "so", "such", "now", "provided", "except",
})  # fmt: skip
_PRONOUN_OBJECT = re.compile(r"\b(it|them|that|this|those)\b(?!'|\s+(?:is|was|seems|looks))")
_AGAIN = re.compile(r"\b(?:again|once\s+more|one\s+more\s+time)\b")
_SHARES = re.compile(
    rf"\b(\d[\d,]*|a\s+hundred|a\s+few|some)\s+(?:([a-z{_MASK}'-]+)\s+)?(shares?|units?)\b"
    r"(\s+(?:of|in)\b)?"
)
_TICKER = re.compile(r"\b[A-Z]{2,5}\b")

_REPEATED_WORD_OK = frozenset({"that", "had", "very", "so", "really", "bye", "ha", "no", "yes",
                               "do", "is"})  # fmt: skip
_PUNCTUATION = ".,;:!?)(\"'`"
#: run on the original text, where a quoted template is still visible
_SLOT = re.compile(
    r"\{\{?\s*[A-Za-z_][\w.]*\s*\}\}?|\{%.*?%\}|\$\{\w+\}"
    r"|<[A-Za-z_][\w-]*(?:\s[A-Za-z_][\w-]*){0,3}>"
    r"|\[(?:\s*(?:\.\.\.|…)\s*|[A-Za-z_][\w -]{0,40})\]"
)
#: run on the masked text with its case (``None`` in prose, not "None of them")
_NONE_VALUE = re.compile(r"(?<=[a-z,:=] )(?:None|NULL|NaN)\b(?!\s+of\b)|\b(?:null|undefined)\b")
_PUNCT_PAIR = re.compile(r"[,;:.]\s*[,;.]")
_DOUBLED_PUNCT = re.compile(
    r",\s*,|;\s*;|(?<=\w)\.\.(?![.\w])|(?<=\w)\.\s+\.(?![.\w])|[,;:]\s*\.(?!\.)|(?<![.\w])\.,"
)
_GLUED_QUOTES = re.compile(r"(?<=\w)''|''(?=\w)")
_STRAY_OPEN = re.compile(r"(?<![\w'])'(?=\w)")
_STRAY_CURLY = re.compile(rf"(?<![\w{_MASK}])’")
_STRAY_CLOSE = re.compile(r"(?<=[A-Za-rt-z0-9])'(?=[\s.,;:!?)]|$)")
_DOUBLE_ARTICLE = re.compile(r"(?<![\w'-])(?:a|an|the)[ \t]+(a|an|the)\b")
_GLUED_SENTENCE = re.compile(r"(?:and|or|then|but)[ \t]+(?:Could|Can|Would|Will|Please|Should)\b")

_MENTION_OR_TAG = re.compile(r"([@#])([A-Za-z0-9_][\w.-]*)")
_FILE_NAME = re.compile(r"(?:.*/)?([\w .-]*\w)\.([A-Za-z][A-Za-z0-9]{0,4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_NAME_LIKE = re.compile(r"[_\d]|[a-z][A-Z]")
_NAME_CUES = frozenset({
    "named", "called", "titled", "name", "file", "folder", "directory", "document", "tag",
    "tags", "hashtag", "hashtags", "tagged", "tagging", "mention", "mentions", "mentioning",
    "mentioned", "user", "username", "handle", "account",
})  # fmt: skip


# ----- analysis of one question -------------------------------------------------------------


def _mask_quotes(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The question with the inside of every quoted span blanked (same length), and the spans."""
    if not any(mark in text for mark in "'\"`‘“"):
        return text, []
    spans = [m.span() for m in _QUOTED.finditer(text)]
    if not spans:
        return text, spans
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last : start + 1])
        parts.append(_MASK * (end - start - 2))
        parts.append(text[end - 1])
        last = end
    parts.append(text[last:])
    return "".join(parts), spans


@lru_cache(maxsize=8192)
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


@lru_cache(maxsize=8192)
def _is_content(word: str) -> bool:
    """A word that can name a thing (not a function word, request phrasing, verb or adverb)."""
    return not (
        word in FUNCTION_WORDS
        or word in _REQUEST_WORDS
        or (word.endswith("ly") and len(word) > 4)
        or _is_verb_form(word)
    )


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "shes", "ches")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    text: str
    request: bool


class QuestionText:
    """One pass over a question: quotes masked, words, sentences and clauses found, and every
    span that asks for something (an imperative clause, a request marker, a ``?``) marked."""

    def __init__(self, question: str) -> None:
        self.original = question
        prose = _INNER_APOSTROPHE.sub("'", question) if "’" in question else question
        self.masked, self.quotes = _mask_quotes(prose)
        self.lower = self.masked.lower()
        self._words: tuple[list[int], list[str]] | None = None
        self._content: list[bool] | None = None
        self._markers = [m.start() for m in _REQUEST_MARKER.finditer(self.lower)]
        self.request_spans: list[tuple[int, int]] = []
        self.sentences = list(self._split())
        self.first_request_end = min(
            (end for _, end in self.request_spans), default=len(question) + 1
        )

    @property
    def word_starts(self) -> list[int]:
        return self._word_index()[0]

    @property
    def words(self) -> list[str]:
        """The lower-cased words of the masked question (quoted values are not words)."""
        return self._word_index()[1]

    def _word_index(self) -> tuple[list[int], list[str]]:
        if self._words is None:
            matches = list(_WORD.finditer(self.lower))
            self._words = ([m.start() for m in matches], [m.group() for m in matches])
        return self._words

    @property
    def content(self) -> list[bool]:
        if self._content is None:
            self._content = [_is_content(word) for word in self.words]
        return self._content

    def _words_in(self, start: int, end: int) -> range:
        return range(bisect_left(self.word_starts, start), bisect_left(self.word_starts, end))

    def _marked(self, start: int, end: int) -> bool:
        index = bisect_left(self._markers, start)
        return index < len(self._markers) and self._markers[index] < end

    def _split(self) -> Iterator[_Sentence]:
        start = 0
        masked = self.masked
        for match in [*_SENTENCE_BREAK.finditer(masked), None]:
            stop, resume = (match.start(), match.end()) if match else (len(masked), len(masked))
            raw = masked[start:stop]
            text = raw.strip()
            if text:
                offset = start + len(raw) - len(raw.lstrip())
                yield self._sentence(offset, offset + len(text), text)
            start = resume

    def _sentence(self, start: int, end: int, text: str) -> _Sentence:
        asks_somewhere = False
        lower, spans = self.lower, self.request_spans
        bounds = [m.span() for m in _CLAUSE_BREAK.finditer(lower, start, end)]
        bounds.append((end, end))
        position = start
        for stop, resume in bounds:
            # a clause that is only "go ahead" leaves the request to the clause after it
            if (
                stop > position
                and not _GO_AHEAD.match(lower, position, stop)
                and (self._imperative(position, stop) or self._marked(position, stop))
            ):
                spans.append((position, stop))
                asks_somewhere = True
            position = resume
        asks = text.rstrip(_TRAILING).endswith("?") or self._marked(start, end)
        if asks:
            self.request_spans.append((start, end))
        return _Sentence(start, end, text, asks or asks_somewhere)

    def _imperative(self, start: int, end: int) -> bool:
        words = _WORD.findall(self.lower, start, end)
        position = 0
        while position < len(words):
            word = words[position]
            if word in VERBS or not (word in _LEAD_SKIP or (word.endswith("ly") and len(word) > 4)):
                break
            position += 1
        if position >= len(words):
            return False
        first = words[position]
        if first in VERBS:
            return True
        following = words[position + 1] if position + 1 < len(words) else ""
        return (
            first.isalpha()
            and first not in FUNCTION_WORDS
            and not first.endswith(("s", "ed", "ing"))
            and following in _OBJECT_START
        )

    # ----- questions the checks ask ---------------------------------------------------------
    @property
    def asks_anything(self) -> bool:
        return bool(self.request_spans)

    def request_before(self, position: int) -> bool:
        """Whether a request clause ends before ``position`` (something was asked earlier)."""
        return self.first_request_end <= position

    def inside_first_request(self, position: int) -> bool:
        return not self.request_before(position) and any(
            start <= position < end for start, end in self.request_spans
        )

    def statement_before(self, position: int) -> bool:
        """Whether an earlier sentence (not the one at ``position``) names anything."""
        return any(
            s.end <= position and any(self.content[i] for i in self._words_in(s.start, s.end))
            for s in self.sentences
        )

    def quote_before(self, position: int) -> bool:
        return bool(self.quotes) and self.quotes[0][0] < position

    def has_antecedent(self, position: int, noun: str | None = None) -> bool:
        """Whether the text before ``position`` offers something to refer back to.

        With a ``noun``: a quoted value, the noun itself or one of its kind ("report.txt" or
        "file" for "that document"). Without: a quoted value or any content word.
        """
        if self.quote_before(position):
            return True
        indices = range(bisect_left(self.word_starts, position))
        if noun is None:
            return any(self.content[i] for i in indices)
        kind = _NOUN_KINDS.get(noun)
        candidates = _KIND_NOUNS.get(kind, ()) if kind else (noun,)
        words, content = self.words, self.content
        for i in indices:  # the noun as a noun: "copy" the verb is no antecedent of "that copy"
            if words[i].startswith(candidates) and (
                content[i] or (i and words[i - 1] in _OBJECT_START)
            ):
                return True
        pattern = _KIND_EVIDENCE.get(kind or "")
        return bool(pattern and pattern.search(self.masked, 0, position))

    def previous_word(self, position: int) -> str:
        index = bisect_left(self.word_starts, position)
        return self.words[index - 1] if index else ""

    def span(self, start: int, end: int, pad: int = 0) -> str:
        return self.original[max(0, start - pad) : end + pad].strip()


_KIND_NOUNS: dict[str, tuple[str, ...]] = {}
for _noun, _kind in _NOUN_KINDS.items():
    _KIND_NOUNS[_kind] = (*_KIND_NOUNS.get(_kind, ()), _noun)


# ----- template artefacts -------------------------------------------------------------------


def _reject(code: RejectionCode, message: str, span: str, **extra: Any) -> Reject:
    return Reject(code, message, Evidence(output={"span": span, **extra}))


def _repeated_phrase(text: QuestionText) -> tuple[int, int, int] | None:
    """(start, end, words) of 1-8 words said twice in a row with only blanks between."""
    tokens = text.lower.split()
    cores = [token.strip(_PUNCTUATION) for token in tokens]
    seen: dict[str, int] = {}
    candidates: list[tuple[int, int]] = []  # (size, first index): a word recurs size words on
    for index, core in enumerate(cores):
        before = seen.get(core)
        if before is not None and index - before <= 8 and core and _MASK not in core:
            candidates.append((index - before, before))
        seen[core] = index
    for size, i in sorted(candidates):
        if i + 2 * size > len(tokens) or cores[i : i + size] != cores[i + size : i + 2 * size]:
            continue
        inner = tokens[i : i + 2 * size]
        if any(t[-1] in _PUNCTUATION for t in inner[:-1]) or any(
            t[0] in _PUNCTUATION for t in inner[1:]
        ):
            continue  # "message, the message": punctuation in between, said on purpose
        if size == 1 and (cores[i] in _REPEATED_WORD_OK or not cores[i].isalpha()):
            continue
        return _token_span(text.lower, i, 2 * size) + (size,)
    return None


def _token_span(lower: str, first: int, count: int) -> tuple[int, int]:
    matches = list(re.finditer(r"\S+", lower))[first : first + count]
    return matches[0].start(), matches[-1].end()


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
    code = RejectionCode.QUESTION_TEMPLATE_ARTEFACT
    repeated = _repeated_phrase(text)
    if repeated:
        start, end, size = repeated
        what = "word" if size == 1 else f"{size}-word phrase"
        raise _reject(
            code,
            f"a {what} is repeated back to back: {text.span(start, end, 12)!r}",
            text.span(start, end),
        )
    original = text.original
    if "{" in original or "<" in original or "[" in original:
        for match in _SLOT.finditer(original):
            if any(match.group() in argument for argument in _string_arguments(ctx)):
                continue  # the call really takes this text (a template, a tag): not a leftover
            raise _reject(
                code,
                f"unfilled template slot {match.group()!r} in "
                f"{text.span(match.start(), match.end(), 20)!r}",
                match.group(),
            )
    found = _artefact_pattern(ctx, text)
    if found:
        what, start, end = found
        raise _reject(code, f"{what}: {text.span(start, end, 20)!r}", text.span(start, end, 3))
    stray = _stray_quote(text)
    if stray is not None:
        raise _reject(
            code,
            f"unbalanced quote {original[stray]!r} in {text.span(stray, stray + 1, 25)!r}",
            text.span(stray, stray + 1, 12),
        )


def _artefact_pattern(ctx: ValidationContext, text: QuestionText) -> tuple[str, int, int] | None:
    masked, lower = text.masked, text.lower
    if any(hint in lower for hint in ("none", "null", "nan", "undefined")):
        match = _NONE_VALUE.search(masked)
        if match and not (_has_null_argument(ctx) or match.group() in _string_arguments(ctx)):
            return "a null value written into the prose", match.start(), match.end()
    if "''" in text.original:
        match = _GLUED_QUOTES.search(text.original)
        if match:
            return "empty or glued quotes", match.start(), match.end()
    if _PUNCT_PAIR.search(masked):
        match = _DOUBLED_PUNCT.search(masked)
        if match:
            return "doubled punctuation", match.start(), match.end()
    for match in _DOUBLE_ARTICLE.finditer(lower):
        if masked[match.start(1)].islower():  # "the A team" is a name
            return "two articles in a row", match.start(), match.end()
    match = _GLUED_SENTENCE.search(masked)
    if match:
        return "a sentence start glued into another sentence", match.start(), match.end()
    return None


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
            return index  # (a digit before '"' is inches)
    if "'" in outside or "’" in outside:
        for pattern in (_STRAY_OPEN, _STRAY_CLOSE, _STRAY_CURLY):
            match = pattern.search(outside)
            if match:
                return match.start()
    return None


# ----- context dependence -------------------------------------------------------------------


def check_context_dependent(ctx: ValidationContext, text: QuestionText) -> None:
    code = RejectionCode.QUESTION_CONTEXT_DEPENDENT
    for sentence in text.sentences:
        opener = _opening_connective(text, sentence)
        if opener and not text.request_before(sentence.start):
            where = "opens with" if sentence.start == 0 else "has a sentence opening with"
            raise _reject(
                code,
                f"the question {where} {opener!r}, which continues an earlier exchange, but "
                f"nothing was asked before it: {text.span(sentence.start, sentence.end)[:80]!r}",
                opener,
            )
    lower = text.lower
    for sentence in text.sentences:
        # a sentence whose first word is lower case and no request ("please ...", "copy ...")
        # nor a name or command ("ls -a", "q1_report.csv") was cut from a longer text
        words = text.original[sentence.start : sentence.end].split(maxsplit=1)
        first = words[0] if words else ""
        before = text.original[: sentence.start].rstrip()
        after_abbreviation = before.endswith(("e.g.", "i.e.", "etc.", "vs."))
        starts_request = first in VERBS or first in _REQUEST_STARTS
        if first.isalpha() and first.islower() and not starts_request and not after_abbreviation:
            said = text.original[sentence.start : sentence.end].strip()[:40]
            raise _reject(code, f"a sentence starts mid-sentence ({said!r})", first)
    for sentence in text.sentences[1:]:
        if _ACKNOWLEDGEMENT.match(lower, sentence.start):
            said = text.span(sentence.start, sentence.end)[:60]
            raise _reject(
                code, f"{said!r} answers work the question has not seen done", said.split()[0]
            )
    correction = _SELF_CORRECTION.search(lower)
    if correction:
        said = text.span(correction.start(), correction.end())
        raise _reject(code, f"{said!r} corrects a request made earlier", said)
    if any(hint in lower for hint in _PRIOR_HINTS):
        match = _PRIOR_DISCOURSE.search(lower)
        if match:
            said = text.span(match.start(), match.end())
            raise _reject(
                code, f"{said!r} refers to an earlier conversation the task does not contain", said
            )
    if "you" in lower or "we" in lower:
        for match in _EARLIER_ACTION.finditer(lower):
            if not text.request_before(match.start()):
                said = text.span(match.start(), match.end())
                raise _reject(
                    code,
                    f"{said!r} presumes something already happened, but the question has asked "
                    "for nothing before it",
                    said,
                )
    _check_references(text)
    _check_unnamed_shares(ctx, text)


def _opening_connective(text: QuestionText, sentence: _Sentence) -> str | None:
    lowered = text.lower[sentence.start : sentence.end]
    match = _CONNECTIVE.match(lowered)
    if match is None:
        return None
    if _BARE_CONNECTIVE.fullmatch(match.group()):
        rest = _WORD.findall(lowered[match.end() : match.end() + 30])
        after_comma = lowered[match.end() : match.end() + 1] == ","
        if not after_comma and not (rest and (rest[0] in VERBS or rest[0] in _REQUEST_STARTS)):
            return None  # "Also known as ...", "Then and now": not a connective
    return text.span(sentence.start, sentence.start + len(match.group().rstrip(" ,!.")))


def _determiner_that(text: QuestionText, start: int) -> bool:
    """Whether "that"/"this" at ``start`` points at a noun ("from that list", "delete that
    file") rather than opening a clause ("the file that contains", "ensure that files ...")."""
    if _PREPOSITION_BEFORE.search(text.lower, max(0, start - 12), start):
        return True
    before = text.previous_word(start)
    return before in VERBS and before not in _CONJUNCTION_HOSTS


def _check_references(text: QuestionText) -> None:
    code = RejectionCode.QUESTION_CONTEXT_DEPENDENT
    lower, masked = text.lower, text.masked
    for match in _DEMONSTRATIVE.finditer(lower):
        if text.request_before(match.start()):
            break  # every later match has an earlier request too
        word, noun = match.group(1), match.group(3)
        if noun in FUNCTION_WORDS:
            continue
        if word in ("that", "this"):
            if (
                (_is_verb_form(noun) and not _determiner_that(text, match.start()))
                or (noun.endswith("ed") and len(noun) > 4)  # "have this rectified"
                or noun != _singular(noun)
                or masked[match.start(3)].isupper()
                or (word == "this" and noun in _DEICTIC_NOUNS)
            ):
                continue  # "make sure that ...", "the file that contains", "this folder"
        elif word in ("these", "those"):
            if noun == _singular(noun) and noun not in ("people", "data"):
                continue
            if word == "these" and _singular(noun) in _DEICTIC_NOUNS:
                continue
        elif lower.startswith((" as ", " of ", " from ", " for "), match.end()):
            continue  # "the same name as ...", "the result of 3 + 4": not a reference
        if text.has_antecedent(match.start(), _singular(noun)):
            continue
        if _CATAPHORA.match(masked, match.end()):
            continue  # "this text: '...'": the value follows
        said = text.span(match.start(), match.end())
        raise _reject(
            code, f"{said!r} refers back to something the question never introduces", said
        )
    for match in _PRONOUN_OBJECT.finditer(lower):
        start = match.start()
        if text.request_before(start):
            break
        before = text.previous_word(start)
        if not before or before in ("make", "keep", "let"):
            continue
        if not (_is_verb_form(before) or before in ("need", "want", "needs", "wants")):
            continue
        after = lower[match.end() :].lstrip()
        if (
            match.group(1) not in ("it", "them")
            and after[:1].isalpha()
            and not after.startswith(("for ", "to ", "into ", "in ", "on ", "with ", "from "))
        ):
            continue  # "check that the doors ...": a conjunction or determiner
        if after.startswith(("if ", "when ", "that ", ":")):
            continue  # "I'd appreciate it if ...", "do this: ...": no earlier referent needed
        if text.has_antecedent(start):
            continue
        said = text.span(start - 20, match.end())
        raise _reject(
            code, f"{match.group(1)!r} in {said!r} has no antecedent in the question", said
        )
    if "again" in lower or "more" in lower:
        for match in _AGAIN.finditer(lower):
            if text.inside_first_request(match.start()):
                raise _reject(
                    code,
                    f"{match.group()!r} in the first request presumes it was done before: "
                    f"{text.span(match.start() - 30, match.end())!r}",
                    match.group(),
                )


def _find_token(haystack: str, needle: str, start: int = 0) -> int:
    """Index of ``needle`` in ``haystack`` not glued to word characters (or ``-1``)."""
    index = haystack.find(needle, start)
    while index != -1:
        end = index + len(needle)
        before = haystack[index - 1] if index else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return index
        index = haystack.find(needle, index + 1)
    return -1


def _check_unnamed_shares(ctx: ValidationContext, text: QuestionText) -> None:
    """ "I want 100 shares." when the calls trade a stock the question never names."""
    if "share" not in text.lower and "unit" not in text.lower:
        return
    symbols: list[str] = []
    for call in ctx.task.calls:
        try:
            _, spec = resolve_tool(call.tool)
        except ToolError:
            continue
        for name, sem in spec.param_types.items():
            if sem not in (Sem.STOCK_SYMBOL, Sem.COMPANY_NAME) or name not in call.arguments:
                continue
            if name in call.bindings or any(k.startswith(name + ".") for k in call.bindings):
                return  # the stock comes from an earlier result, which the question refers to
            value = call.arguments[name]
            items = value if isinstance(value, list) else [value]
            symbols += [item for item in items if isinstance(item, str)]
    lowered = text.original.lower()
    if not symbols or any(_find_token(lowered, s.lower()) != -1 for s in symbols):
        return
    if _TICKER.search(text.masked.replace("I ", "")):
        return  # a ticker stands somewhere in the question
    for match in _SHARES.finditer(text.lower):
        modifier = match.group(2) or ""
        named = match.start(2) != -1 and text.masked[match.start(2)].isupper()
        if match.group(4) or _MASK in modifier or named:
            continue  # "shares of X", "100 'NVDA' shares", "100 Apple shares"
        said = text.span(match.start(), match.end())
        raise _reject(
            RejectionCode.QUESTION_CONTEXT_DEPENDENT,
            f"{said!r} does not say which stock; the calls trade "
            f"{', '.join(sorted(set(symbols)))}, which the question never names",
            said,
        )


# ----- no request ---------------------------------------------------------------------------


def check_no_request(ctx: ValidationContext, text: QuestionText) -> None:
    if text.asks_anything:
        return
    raise _reject(
        RejectionCode.QUESTION_NO_REQUEST,
        "no sentence of the question asks for anything (no question mark, imperative or "
        f"request such as 'please' / 'could you' / 'I'd like'): {text.original[:120]!r}",
        text.original[:200],
    )


# ----- format lost --------------------------------------------------------------------------


def _format_variants(value: str, sem: Sem | None) -> tuple[str, str] | None:
    """(what is lost, the value without it) for a value that carries a format marker."""
    if value[:1] in "@#":
        marked = _MENTION_OR_TAG.fullmatch(value)
        if marked and sem in (None, Sem.TAG, Sem.USER_NAME, Sem.TEXT, Sem.KEYWORD):
            return ("the leading " + marked.group(1), marked.group(2))
        return None
    if "." in value and sem in (None, Sem.FILE_NAME, Sem.PATH, Sem.DOCUMENT_ID, Sem.TITLE):
        named = _FILE_NAME.fullmatch(value)
        if named and named.group(2).lower() in _FILE_EXTENSIONS:
            return (f"the extension .{named.group(2)}", named.group(1))
    return None


def _date_lost(value: str, question: str) -> str | None:
    """An ISO date written in the question with its separators stripped (``20240301``)."""
    date = _ISO_DATE.fullmatch(value)
    if not date or value in question:
        return None
    year, month, day = date.groups()
    found = re.search(rf"(?<!\d){year}[/. _]?{month}[/. _]?{day}(?!\d)", question)
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
    lowered = question.lower()
    for index, name, value, sem in _literal_arguments(ctx):
        call = ctx.task.calls[index]
        if value[:1].isdigit() and sem in (None, Sem.DATE):
            date = _date_lost(value, question)
            if date:
                raise _format_lost(call.id, name, value, date, f"the date as {date!r}")
        dropped = _marker_dropped(value, sem, call.arguments.get(name), question)
        if dropped is not None:
            lost = f"{dropped!r} (the leading {dropped[0]} is dropped)"
            raise _format_lost(call.id, name, value, dropped, lost)
        variants = _format_variants(value, sem)
        if variants is None or _find_token(lowered, value.lower()) != -1:
            continue
        lost, bare = variants
        found = _lost_mention(ctx, text, index, value, bare)
        if found is None:
            continue
        raise Reject(
            RejectionCode.QUESTION_FORMAT_LOST,
            f"step {call.id} passes {name}={value!r}, but the question only says {bare!r} "
            f"({lost} is lost): {text.span(found - 20, found + len(bare) + 10)!r}",
            Evidence(step_id=call.id, output={"argument": name, "value": value, "span": bare}),
        )


def _format_lost(step_id: str, name: str, value: str, span: str, written: str) -> Reject:
    return Reject(
        RejectionCode.QUESTION_FORMAT_LOST,
        f"step {step_id} passes {name}={value!r}, but the question writes {written}",
        Evidence(step_id=step_id, output={"argument": name, "value": value, "span": span}),
    )


def _marker_dropped(value: str, sem: Sem | None, argument: Any, question: str) -> str | None:
    """The marked form (``@alice``) the question writes for an item of a list of mentions or
    tags passed without its marker, where the question never writes the bare name: "add
    @alice to the mentions" over ``["alice"]`` (run llm26). A single login name is not held
    to it: a handle is written with or without its ``@``."""
    if not isinstance(argument, list) or sem not in (Sem.USER_NAME, Sem.TAG):
        return None
    if not value or value[:1] in "@#":
        return None
    lowered, needle = question.lower(), value.lower()
    marked = None
    position = _find_token(lowered, needle)
    while position != -1:
        if not position or lowered[position - 1] not in "@#":
            return None  # the question also writes the bare name
        marked = marked or question[position - 1 : position + len(needle)]
        position = _find_token(lowered, needle, position + 1)
    return marked


def _lost_mention(
    ctx: ValidationContext, text: QuestionText, index: int, value: str, bare: str
) -> int | None:
    """Where the question names ``bare`` as the value itself (not as an ordinary word).

    An occurrence counts when it is introduced as a name (quoted, "named x", "tag x"), or when
    it looks like a name (``q1_summary``, ``ProjectUpdate``) and no earlier result shows the
    exact value; "the proposal document" for ``proposal.docx`` is an ordinary word.
    """
    lowered, needle = text.original.lower(), bare.lower()
    name_like = bool(_NAME_LIKE.search(bare))
    position = _find_token(lowered, needle)
    while position != -1:
        glued = position and lowered[position - 1] in "@#."
        following = lowered[position + len(needle) : position + len(needle) + 2]
        if not glued and not (following[:1] == "." and following[1:2].isalnum()):
            if _cued(text, position):
                return position
            if name_like and not _observed_before(ctx, index, value):
                return position
        position = _find_token(lowered, needle, position + 1)
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
    except Exception:  # noqa: BLE001 - a replay that fails is the execution checks' business
        return False
    needle = value.lower()
    return any(needle in _flat_text(step.result) for step in traces[:index])


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


# ----- quoted values the calls ignore ---------------------------------------------------------

#: a quoted span: the quote opens and closes a run of text that does not start or end in a space
_QUOTED_SPAN = re.compile(
    r"""(?<![A-Za-z0-9])(['"])(?=\S)([^'"\n]{1,120}?)(?<=\S)\1(?![A-Za-z0-9])"""
)
_TOKEN = re.compile(r"[A-Za-z0-9]+")
#: a user handle or hashtag written without quotes ("@lena_m", "#launch"); not an e-mail address
_HANDLE = re.compile(r"(?<![\w@#'\"])[@#][A-Za-z_][\w.]*[A-Za-z0-9_]")
#: a quoted value the user rules out ("no 'ha ha' in it", "not 'draft'") is not one to act on
_NEGATED = re.compile(r"\b(?:no|not|never|without|instead of|rather than|except)\s*$", re.I)


def _observed_strings(ctx: ValidationContext) -> list[str]:
    everything = [call.arguments for call in ctx.task.calls] + list(ctx.outputs)
    return [str(value) for value in scalars(everything, with_keys=True) if value is not None]


def check_unused_value(ctx: ValidationContext) -> None:
    """A name or value the question quotes is one the calls act on or a result shows: "copy
    it into the 'Glacier' folder inside 'Documentation'" with no step that enters
    'Documentation' leaves the reader guessing where they are. A quoted span counts as used when
    some argument or result contains it, or has each of its words and numbers among its own
    ('Zeta Corp' in "Corp Zeta"; not '12/25' for the expiry 12/2025, whose year is written
    otherwise); a tool's own name ('ls') is a command, not a value, and the sentence that asks
    for it must have a call of it (:func:`_check_tool_request`). It runs after grounding: an
    argument that replaced the quoted value is the more precise diagnosis."""
    observed = _observed_strings(ctx)
    tools = {call.tool.rsplit(".", 1)[-1] for call in ctx.task.calls}
    others = alternatives(ctx.task.question)  # 'healthy' or 'not healthy': one is passed
    for match in _QUOTED_SPAN.finditer(ctx.task.question):
        span = match.group(2)
        if span in others and any(others[span] == seen for seen in observed):
            continue
        tokens = _TOKEN.findall(span)
        if span in tools:
            _check_tool_request(ctx, span, match.start())
            continue
        if not tokens:
            continue
        if _NEGATED.search(ctx.task.question[max(match.start() - 15, 0) : match.start()]):
            continue
        if any(span in seen for seen in observed):
            continue
        if any(set(tokens) <= set(_TOKEN.findall(seen)) for seen in observed):
            continue
        raise Reject(
            RejectionCode.QUESTION_UNUSED_VALUE,
            f"the question quotes {match.group(0)}, but no call passes it and no result shows it",
            Evidence(output={"quoted": span}),
        )
    for match in _HANDLE.finditer(ctx.task.question):
        # "retweet @lena_m's post" names a value as surely as a quote does
        handle = match.group(0)
        if any(handle in seen or handle[1:] in seen for seen in observed):
            continue
        raise Reject(
            RejectionCode.QUESTION_UNUSED_VALUE,
            f"the question names {handle}, but no call passes it and no result shows it",
            Evidence(output={"quoted": handle}),
        )


def _check_tool_request(ctx: ValidationContext, tool: str, at: int) -> None:
    """A sentence that asks for a tool by name ("find the files using 'ls'") has a call of it:
    one 'ls' earlier in the task does not do what a later sentence asks again."""
    parts = sentences(ctx.task.question)
    starts, offset = [], 0
    for part in parts:
        offset = ctx.task.question.find(part, offset)
        starts.append(offset)
    sentence = max((i for i, start in enumerate(starts) if start <= at), default=0)
    placed = place_calls(ctx.task.question, ctx.task.calls)
    if any(
        spot == sentence and call.tool.rsplit(".", 1)[-1] == tool
        for spot, call in zip(placed, ctx.task.calls)
    ):
        return
    raise Reject(
        RejectionCode.QUESTION_UNUSED_VALUE,
        f"the sentence {parts[sentence][:120]!r} asks for '{tool}', but no call of {tool} "
        "belongs to it",
        Evidence(output={"quoted": tool, "sentence": parts[sentence][:300]}),
    )


# ----- things called new -----------------------------------------------------------------------

#: containers a name identifies: one that already has the name is not new
_NAMED_THING = r"(?:sub)?(?:directory|directories|folder|file|table|buffer)"
_CALLED_NEW = re.compile(
    rf"\bnew\s+{_NAMED_THING}\s+(?:(?:named|called|titled)\s+)?(['\"])(?P<after>[^'\"]+)\1"
    rf"|(['\"])(?P<before>[^'\"]+)\3\s+(?:as\s+)?an?\s+new\s+{_NAMED_THING}\b",
    re.IGNORECASE,
)


def check_false_premise(ctx: ValidationContext, text: QuestionText) -> None:
    """A directory, file, table or buffer the question calls new must not exist before the
    first call: "move it into a new directory 'archive'" over a state that already has
    'archive' asks for a creation no call makes (readers expect a mkdir and find none)."""
    del text
    names = set(keys(ctx.task.initial_config))
    for match in _CALLED_NEW.finditer(ctx.task.question):
        name = match.group("after") or match.group("before")
        if name in names:
            raise Reject(
                RejectionCode.QUESTION_FALSE_PREMISE,
                f"the question calls {name!r} new ({match.group(0)!r}), but it exists before "
                "any call",
                Evidence(output={"name": name}),
            )


# ----- the check ------------------------------------------------------------------------------

# ----- requests no call serves --------------------------------------------------------------

#: words before a phrase that take the request back ("no need to navigate", "without guiding")
_WAIVED = re.compile(r"\b(?:no need to|don't|do not|without|never|not)\s+(?:\w+\s+)?$")


def check_unserved_request(ctx: ValidationContext, text: QuestionText) -> None:
    """A phrase that asks for one tool ("guide me to the shop" for ``set_navigation``, declared
    with ``@tool(asked_by=...)``) needs a call of it. A sentence with a condition needs it only
    when the calls act on the sentence (they look up the shop it names): then the ground truth
    took the condition as true, and a false one would leave out the whole sentence."""
    _check_existence(ctx)
    called = {call.tool for call in ctx.task.calls}
    for env_name in ctx.task.envs:
        try:
            specs = get_env_class(env_name).tool_specs().values()
        except KeyError:
            continue
        for spec in specs:
            if not spec.asked_by or f"{env_name}.{spec.name}" in called:
                continue
            for phrase in spec.asked_by:
                for found in re.finditer(rf"\b{re.escape(phrase)}\b", text.lower):
                    sentence = _sentence_around(text.lower, found.start())
                    before = text.lower[max(found.start() - 30, 0) : found.start()]
                    if _WAIVED.search(before):
                        continue
                    if CONDITION.search(sentence) and not any(
                        names_call(call, sentence) for call in ctx.task.calls
                    ):
                        continue
                    raise _reject(
                        RejectionCode.QUESTION_UNSERVED_REQUEST,
                        f"the question asks to {phrase!r} (a request for {env_name}.{spec.name})"
                        ", but no call does it",
                        sentence.strip()[:200],
                    )


#: a request to check that something is there before acting on it
_EXISTENCE = re.compile(
    r"\b(?:(?:presence|existence) of|if (?:there is|there's) (?:one|such|any)"
    r"|if (?:it|they|the file|the folder|the directory) exists?"
    r"|(?:check|see|verify|confirm) (?:if|whether|that) .{0,60}?(?:exists?|is there|is present))",
    re.IGNORECASE,
)


def _check_existence(ctx: ValidationContext) -> None:
    """ "Examine the directory for 'lumen.txt'; if there is one, show it" asks to look before
    acting: some call must return the name (a listing, a search) before the first call that
    passes it. A read of the file itself is no check: it fails where a check would answer."""
    question = ctx.task.question
    for cue in _EXISTENCE.finditer(question):
        sentence = _sentence_around(question, cue.start())
        for quoted in _QUOTED_SPAN.finditer(sentence):
            name = quoted.group(2)
            users = [
                j
                for j, call in enumerate(ctx.task.calls)
                if name in (str(value) for value in scalars(call.arguments))
            ]
            if not users:
                continue
            if any(name.lower() in _flat_text(ctx.outputs[k]) for k in range(users[0])):
                continue
            raise _reject(
                RejectionCode.QUESTION_UNSERVED_REQUEST,
                f"the question asks to check that '{name}' is there ({cue.group(0)!r}), but no "
                f"call lists or finds it before step {ctx.task.calls[users[0]].id} uses it",
                sentence.strip()[:200],
            )


def _sentence_around(lower: str, position: int) -> str:
    start = max(lower.rfind(mark, 0, position) for mark in (". ", "? ", "! ", "; "))
    ends = [lower.find(mark, position) for mark in (". ", "? ", "! ", "; ")]
    end = min((e for e in ends if e >= 0), default=len(lower))
    return lower[start + 1 : end + 1]


_CHECKS = (
    check_template_artefact,
    check_context_dependent,
    check_no_request,
    check_format_lost,
    check_false_premise,
    check_unserved_request,
)


def check_question(ctx: ValidationContext) -> None:
    """Reject a question that carries generator artefacts, presumes an earlier conversation,
    asks for nothing, or drops the format of a literal; the first failure is the verdict and
    the others are added to its evidence as ``also_failed``."""
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
