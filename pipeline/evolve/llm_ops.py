"""The LLM operators: deepen, broaden, paraphrase, repair, and the judge.

Each renders its template, asks the model for a pydantic-validated answer, and turns that answer
into a candidate task. Calls come back as call strings and are parsed with ``ast`` (never
``eval``); their dependencies are then inferred by execution, as for imported tasks. A model
answer that cannot become a task is a rejection with the raw text kept, never a crash.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.dependencies import infer_dependencies
from pipeline.evolve.candidate import Candidate
from pipeline.evolve.prompts import render
from pipeline.llm import LLMClient
from pipeline.models import Evidence, Lineage, Rejection, RejectionCode, Stage, Task
from pipeline.validate.context import Reject
from pipeline.validate.static import parse_candidate


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EvolvedTask(_Answer):
    question: str = Field(min_length=1)
    ground_truth: list[str] = Field(min_length=1)


class RepairAnswer(_Answer):
    give_up: bool = False
    reason: str = ""
    question: str = ""
    ground_truth: list[str] = Field(default_factory=list)


class ParaphraseAnswer(_Answer):
    question: str = Field(min_length=1)


class Judgement(_Answer):
    agrees: bool
    ambiguous: bool
    reason: str = ""


def _lineage(parent: Task, operator: str, model: str | None, prompt_hash: str) -> Lineage:
    return Lineage(
        parents=[parent.id],
        operator=operator,
        round=parent.lineage.round + 1,
        model=model,
        prompt_hash=prompt_hash,
        source=parent.lineage.source,
    )


def _model_failure(parent: Task, operator: str, error: str | None, raw: str | None) -> Candidate:
    rejection = Rejection(
        sample_id=f"{parent.id}:{operator}",
        stage=Stage.PARSE,
        code=RejectionCode.PARSE_MALFORMED,
        message=f"{operator}: the model gave no usable answer ({error})",
        raw=raw,
    )
    return Candidate(operator, parent.id, rejection=rejection)


def task_from_answer(
    parent: Task, operator: str, question: str, calls: list[str], lineage: Lineage, raw: str | None
) -> Candidate:
    """Parse the model's calls in the parent's environments and infer their dependencies."""
    data: dict[str, Any] = {
        "category": parent.category,
        "envs": parent.envs,
        "question": question,
        "initial_config": parent.initial_config,
        "calls": calls,
    }
    try:
        task = parse_candidate(json.dumps(data))
    except Reject as verdict:
        rejection = verdict.to_rejection(f"{parent.id}:{operator}", raw)
        return Candidate(operator, parent.id, rejection=rejection)
    try:
        inferred = infer_dependencies(task.envs, task.initial_config, task.calls, task.question)
    except ValueError as error:  # an initial state the environments refuse
        rejection = Rejection(
            sample_id=task.id,
            stage=Stage.STATIC,
            code=RejectionCode.STATIC_BAD_INITIAL_STATE,
            message=str(error)[:2000],
            evidence=Evidence(),
            raw=raw,
        )
        return Candidate(operator, parent.id, rejection=rejection)
    built = task.model_copy(update={"calls": inferred, "lineage": lineage}).with_content_id()
    return Candidate(operator, parent.id, task=built, raw=raw)


async def evolve_with_llm(operator: str, parent: Task, client: LLMClient) -> Candidate:
    """``deepen`` or ``broaden``: a new question and call sequence from the model."""
    prompt = render(operator, parent)
    result = await client.structured(
        stage=operator,
        messages=prompt.messages,
        output=EvolvedTask,
        template_hash=prompt.template_hash,
    )
    if result.value is None:
        return _model_failure(parent, operator, result.error, result.raw)
    lineage = _lineage(parent, operator, client.model, prompt.template_hash)
    answer = result.value
    return task_from_answer(
        parent, operator, answer.question, answer.ground_truth, lineage, result.raw
    )


async def paraphrase(parent: Task, client: LLMClient) -> Candidate:
    prompt = render("paraphrase", parent)
    result = await client.structured(
        stage="paraphrase",
        messages=prompt.messages,
        output=ParaphraseAnswer,
        template_hash=prompt.template_hash,
    )
    if result.value is None:
        return _model_failure(parent, "paraphrase", result.error, result.raw)
    lineage = _lineage(parent, "paraphrase", client.model, prompt.template_hash)
    task = parent.model_copy(
        update={"question": result.value.question, "expected": None, "lineage": lineage}
    )
    return Candidate("paraphrase", parent.id, task=task.with_content_id(), raw=result.raw)


async def repair(task: Task, rejection: Rejection, client: LLMClient) -> Candidate:
    """One repair attempt for a rejected task; giving up is a rejection that says so."""
    prompt = render("repair", task, rejection)
    result = await client.structured(
        stage="repair",
        messages=prompt.messages,
        output=RepairAnswer,
        template_hash=prompt.template_hash,
    )
    if result.value is None:
        return _model_failure(task, "repair", result.error, result.raw)
    answer = result.value
    if answer.give_up or not answer.ground_truth or not answer.question:
        gave_up = rejection.model_copy(
            update={"message": f"{rejection.message} (repair gave up: {answer.reason or 'no fix'})"}
        )
        return Candidate("repair", task.id, rejection=gave_up)
    lineage = _lineage(task, "repair", client.model, prompt.template_hash)
    return task_from_answer(
        task, "repair", answer.question, answer.ground_truth, lineage, result.raw
    )


async def judge(task: Task, client: LLMClient) -> Rejection | None:
    """The optional last check: ``None`` when the judge agrees and sees no ambiguity."""
    prompt = render("judge", task)
    result = await client.structured(
        stage="judge",
        messages=prompt.messages,
        output=Judgement,
        template_hash=prompt.template_hash,
    )
    if result.value is None:
        return None  # an unavailable judge does not reject; the validation already passed
    verdict = result.value
    if verdict.agrees and not verdict.ambiguous:
        return None
    code = RejectionCode.JUDGE_MISMATCH if not verdict.agrees else RejectionCode.JUDGE_AMBIGUOUS
    return Rejection(
        sample_id=task.id,
        stage=Stage.JUDGE,
        code=code,
        message=f"the judge found: {verdict.reason or code.value}",
        raw=result.raw,
    )
