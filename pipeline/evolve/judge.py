"""The LLM judge: it copies out what it sees in a task, code checks what it copied,
and a label found that way rejects only once calibration trusts it.

The judge reads a task as a blind reader does (``../shared/validity/RUBRIC.md``): the request,
the calls with their dependencies, and what each call returned (trimmed), plus the documentation
of the tools the calls use. It is not asked whether the task is valid (a small model says yes to
every such question): it maps the request's parts to the calls and lists what it finds per kind
of problem, and ``judge_checks`` keeps only what is really there (a quote in the request, a value
a call passes that nothing shows). Judging runs at temperature 0 (the client's default for
``judge`` stages).

A label's "no" rejects a task only when the label is *trusted*: the judge's precision and recall
on the labelled set (``bench/judge_calibration.py`` over ``bench/data/judge_labelled.jsonl``)
for this model and this prompt clear ``TrustRule``. Which labels those are is read from the
calibration file at run time, never written into code. A "no" on an untrusted label is counted
in the manifest and rejects nothing. An endpoint that gives no usable answer (refusals, replies
that stay unparseable after the client's re-asks) leaves the task *not judged*: it is kept,
since validation already passed, and counted as such — never as an agreement.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pipeline.envs import ENVIRONMENTS
from pipeline.evolve import judge_checks
from pipeline.evolve.candidate import Candidate
from pipeline.evolve.judge_checks import CHECKS, JudgeAnswer, findings
from pipeline.evolve.prompts import PROMPTS_DIR, call_results, templates
from pipeline.llm import LLMClient
from pipeline.models import Evidence, Rejection, RejectionCode, Stage, Task

TEMPLATE = "judge.j2"
SYSTEM_TEMPLATE = "judge_system.j2"
#: the calibration the evolve run reads by default (written by bench/judge_calibration.py)
DEFAULT_CALIBRATION = PROMPTS_DIR / "judge_calibration.json"
#: the manifest's ``judge`` entry (``Trust.as_dict`` and ``merge_stats`` together)
JudgeRecord = dict[str, Any]
STAGE = "judge"  # the client samples stages named judge... at temperature 0
#: the lists of a typical task and the JSON around them, with room; a reply cut here is not
#: judged
MAX_TOKENS = 640
MAX_ARGUMENTS_CHARS = 300
MAX_QUESTION_CHARS = 1500

#: rubric labels, in the rubric's order; each has a list in the answer and a check in code
LABELS: tuple[str, ...] = tuple(CHECKS)

#: rubric label -> the code of a rejection for it
CODES: dict[str, RejectionCode] = {
    "nonsensical": RejectionCode.JUDGE_NONSENSICAL,
    "unnatural-language": RejectionCode.JUDGE_UNNATURAL_LANGUAGE,
    "context-dependent": RejectionCode.JUDGE_CONTEXT_DEPENDENT,
    "under-specified": RejectionCode.JUDGE_AMBIGUOUS,
    "ungrounded": RejectionCode.JUDGE_UNGROUNDED,
    "mismatch": RejectionCode.JUDGE_MISMATCH,
    "wrong-dependency": RejectionCode.JUDGE_WRONG_DEPENDENCY,
}


# --- the answer ----------------------------------------------------------------------------------


class LabelAnswer(BaseModel):
    """What the checks made of the judge's lists for one label: "no" with what they found."""

    model_config = ConfigDict(extra="ignore")

    reason: str
    answer: Literal["yes", "no"]


@dataclass(frozen=True)
class Verdict:
    """The judge's answers about one task, or why there are none (``judged`` False)."""

    task_id: str
    judged: bool
    answers: dict[str, LabelAnswer] = field(default_factory=dict)  # by rubric label
    error: str | None = None
    raw: str | None = None
    lists: dict[str, Any] = field(default_factory=dict)  # what the judge copied out

    @property
    def found(self) -> list[str]:
        """The labels the judge answered "no" for, in rubric order."""
        return [label for label in LABELS if self.answers.get(label, _YES).answer == "no"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "judged": self.judged,
            "found": self.found,
            "answers": {label: a.model_dump() for label, a in self.answers.items()},
            "lists": self.lists,
            "prompt_hash": prompt_hash(),
            "error": self.error,
        }


_YES = LabelAnswer(reason="", answer="yes")


# --- the prompt ----------------------------------------------------------------------------------


@cache
def template_hash() -> str:
    """What a calibration is valid for: the judge's two templates and the checks that read
    its answers (a changed check finds other things, so it needs a new calibration too)."""
    digest = hashlib.sha256()
    for name in (SYSTEM_TEMPLATE, TEMPLATE):
        digest.update((PROMPTS_DIR / name).read_bytes())
    digest.update(Path(judge_checks.__file__).read_bytes())
    return digest.hexdigest()[:16]


@cache
def prompt_hash() -> str:
    """What the model was asked: the two templates and the answer's schema. Stored answers
    with this hash can be checked again by changed checks without asking anew
    (``bench/judge_calibration.py --rescore``)."""
    digest = hashlib.sha256()
    for name in (SYSTEM_TEMPLATE, TEMPLATE):
        digest.update((PROMPTS_DIR / name).read_bytes())
    digest.update(json.dumps(JudgeAnswer.model_json_schema(), sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _tools_used(task: Task) -> list[dict[str, str]]:
    """Name, arguments and description of each tool the calls use (not the whole API: a small
    model reads every token, and the unused tools say nothing about this task)."""
    shown: list[dict[str, str]] = []
    seen: set[str] = set()
    for call in task.calls:
        spec = ENVIRONMENTS[call.env].tool_specs().get(call.function)
        if spec is None or call.tool in seen:
            continue
        seen.add(call.tool)
        required = set(spec.parameters.get("required", []))
        arguments = ", ".join(
            name if name in required else f"{name} (optional)" for name in spec.param_names
        )
        shown.append(
            {
                "name": call.function,
                "arguments": arguments or "none",
                "description": _short(" ".join(spec.description.split()), 200),
            }
        )
    return shown


def _calls(task: Task) -> list[dict[str, str]]:
    shown = []
    for call, result in zip(task.calls, call_results(task)):
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        sources = ", ".join(f"{arg} from {src}" for arg, src in call.bindings.items())
        shown.append(
            {
                "id": call.id,
                "tool": call.function,
                "arguments": _short(arguments, MAX_ARGUMENTS_CHARS),
                "waits_for": ", ".join(call.depends_on) or "nothing",
                "sources": sources,
                "result": result,
            }
        )
    return shown


def messages(task: Task) -> list[dict[str, str]]:
    """The judge's prompt about ``task``: what to copy out, with worked examples, in the
    system message (the same for every task, so a server's prompt cache keeps it), the
    evidence in the user message."""
    jinja = templates()
    context = {
        "question": _short(task.question, MAX_QUESTION_CHARS),
        "tools": _tools_used(task),
        "calls": _calls(task),
    }
    system = jinja.get_template(SYSTEM_TEMPLATE).render().strip()
    user = jinja.get_template(TEMPLATE).render(**context).strip()
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def rate(task: Task, client: LLMClient) -> Verdict:
    """Ask the judge to copy out what it sees in ``task`` and check its lists in code; a
    reply that cannot be read is a verdict not judged."""
    result = await client.structured(
        stage=STAGE,
        messages=messages(task),
        output=JudgeAnswer,
        template_hash=template_hash(),
        max_tokens=min(MAX_TOKENS, client.config.max_tokens),
    )
    if result.value is None:
        return Verdict(task.id, judged=False, error=result.error or "no answer", raw=result.raw)
    return checked(task, result.value.model_dump(), result.raw)


def checked(task: Task, lists: dict[str, Any], raw: str | None = None) -> Verdict:
    """The verdict the checks in code make of what the judge copied out of ``task``."""
    found = findings(task, JudgeAnswer.model_validate(lists), call_results(task))
    answers = {
        label: LabelAnswer(reason="; ".join(problems), answer="no")
        if problems
        else LabelAnswer(reason="nothing found", answer="yes")
        for label, problems in found.items()
    }
    return Verdict(task.id, judged=True, answers=answers, raw=raw, lists=lists)


# --- trust ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustRule:
    """When a label's "no" may reject: the judge beats chance by a wide margin on the set.

    Chance is the base rate: a judge that flags tasks at random has a precision equal to the
    share of tasks that carry the label."""

    margin: float = 0.3  # precision at least this far above the base rate
    min_recall: float = 0.5
    min_positives: int = 3  # tasks with the label in the set: fewer measure nothing
    min_coverage: float = 0.8  # share of the set the endpoint judged at all

    def admits(self, stats: dict[str, Any], coverage: float) -> bool:
        precision = stats.get("precision")
        recall = stats.get("recall")
        if precision is None or recall is None or coverage < self.min_coverage:
            return False
        return (
            int(stats.get("positives", 0)) >= self.min_positives
            and float(precision) >= float(stats["base_rate"]) + self.margin
            and float(recall) >= self.min_recall
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "min_recall": self.min_recall,
            "min_positives": self.min_positives,
            "min_coverage": self.min_coverage,
        }


RULE = TrustRule()


@dataclass(frozen=True)
class Trust:
    """The labels whose "no" rejects, and where that came from (for the manifest)."""

    labels: frozenset[str]
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"trusted_labels": sorted(self.labels), "trust_source": self.source}


def trusted_labels(entry: dict[str, Any], rule: TrustRule = RULE) -> frozenset[str]:
    """The labels of one model's calibration entry that ``rule`` admits."""
    coverage = float(entry.get("coverage", 0.0))
    per_label: dict[str, Any] = entry.get("labels", {})
    return frozenset(
        label
        for label, stats in per_label.items()
        if label in CHECKS and rule.admits(stats, coverage)
    )


def load_trust(path: Path | None, model: str) -> Trust:
    """What the calibration file says about ``model`` and today's judge prompt; nothing is
    trusted for a model it has not measured or for a prompt changed since."""
    path = DEFAULT_CALIBRATION if path is None else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Trust(frozenset(), f"no calibration file {path}: the judge rejects nothing")
    except (OSError, ValueError) as error:
        raise ValueError(f"judge calibration {path} cannot be read: {error}") from None
    entry = data.get("models", {}).get(model) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return Trust(frozenset(), f"{path} has no calibration for model {model!r}")
    if entry.get("template_hash") != template_hash():
        return Trust(
            frozenset(),
            f"{path} calibrated {model!r} with judge prompt {entry.get('template_hash')},"
            f" not today's {template_hash()}: recalibrate (bench/judge_calibration.py)",
        )
    return Trust(trusted_labels(entry), f"{path}, model {model!r}")


# --- verdicts in a run ---------------------------------------------------------------------------


def rejection_for(task: Task, verdict: Verdict, trust: Trust) -> Rejection | None:
    """A rejection for the first trusted label the judge found, with its reason and the other
    answers as evidence; None when no trusted label was found (or the task was not judged)."""
    found = [label for label in verdict.found if label in trust.labels]
    if not verdict.judged or not found:
        return None
    first = found[0]
    reason = verdict.answers[first].reason.strip() or "no reason given"
    return Rejection(
        sample_id=task.id,
        stage=Stage.JUDGE,
        code=CODES[first],
        message=f"the judge found the task {first}: {_short(reason, 600)}",
        evidence=Evidence(
            output={
                "label": first,
                "found_in": CHECKS[first][0],
                "lists": verdict.lists,
                "answers": {
                    label: {"answer": a.answer, "reason": _short(a.reason, 300)}
                    for label, a in verdict.answers.items()
                },
            },
            also_failed={
                CODES[label].value: _short(verdict.answers[label].reason, 300)
                for label in found[1:]
            },
        ),
        raw=verdict.raw,
    )


@dataclass
class JudgeStats:
    """What the judge did in a shard or run (the manifest's ``judge`` entry)."""

    judged: int = 0
    not_judged: int = 0
    rejected: int = 0
    #: "no" answers per label that rejected nothing (the label is not trusted)
    untrusted_no: dict[str, int] = field(default_factory=dict)
    not_judged_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judged": self.judged,
            "not_judged": self.not_judged,
            "rejected": self.rejected,
            "untrusted_no": dict(sorted(self.untrusted_no.items())),
            "not_judged_ids": sorted(self.not_judged_ids),
        }


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Shard ``JudgeStats.as_dict()`` records summed into one."""
    total = JudgeStats()
    untrusted: Counter[str] = Counter()
    for part in parts:
        total.judged += int(part.get("judged", 0))
        total.not_judged += int(part.get("not_judged", 0))
        total.rejected += int(part.get("rejected", 0))
        untrusted.update(part.get("untrusted_no", {}))
        total.not_judged_ids.extend(part.get("not_judged_ids", []))
    total.untrusted_no = dict(untrusted)
    return total.as_dict()


Outcome = tuple[Candidate, Task | Rejection]


async def judge_outcomes(
    accepted: list[Outcome], rejected: list[Outcome], client: LLMClient, trust: Trust
) -> tuple[list[Outcome], list[Outcome], JudgeStats]:
    """Ask the judge about every accepted task; a trusted "no" moves it to the rejected."""
    # one verdict per distinct task: a shard can accept the same task from two candidates
    distinct = {outcome.id: outcome for _, outcome in accepted if isinstance(outcome, Task)}
    verdicts = await asyncio.gather(*(rate(task, client) for task in distinct.values()))
    by_id = {verdict.task_id: verdict for verdict in verdicts}
    stats = JudgeStats()
    kept: list[Outcome] = []
    for candidate, outcome in accepted:
        verdict = by_id.get(outcome.id) if isinstance(outcome, Task) else None
        if verdict is None or not isinstance(outcome, Task):
            kept.append((candidate, outcome))
            continue
        rejection = rejection_for(outcome, verdict, trust)
        if rejection is None:
            kept.append((candidate, outcome))
        else:
            rejected.append((candidate, rejection))
    for task_id, verdict in by_id.items():  # counted once per task
        if not verdict.judged:
            stats.not_judged += 1
            stats.not_judged_ids.append(task_id)
            continue
        stats.judged += 1
        if rejection_for(distinct[task_id], verdict, trust) is not None:
            stats.rejected += 1
        for label in verdict.found:
            if label not in trust.labels:
                stats.untrusted_no[label] = stats.untrusted_no.get(label, 0) + 1
    return kept, rejected, stats
