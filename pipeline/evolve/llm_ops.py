"""The LLM operators: deepen, broaden, paraphrase and repair (the judge: ``judge.py``).

Each renders its template, asks the model for a pydantic-validated answer, and turns that answer
into a candidate task. Calls come back as ``{"tool", "arguments"}`` objects whose tool names the
output schema limits to the task's environments, so a server that turns the schema into a
grammar (llama.cpp) cannot write a call string, an unknown tool or a runaway list; their
dependencies are then inferred by execution, as for imported tasks. A model answer that cannot
become a task is a rejection with the raw text kept, never a crash.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from pipeline.dependencies import infer_dependencies
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.candidate import Candidate
from pipeline.evolve.novelty import copied_phrase, literal_changed
from pipeline.evolve.prompts import Prompt, render, tool_names
from pipeline.llm import LLMClient
from pipeline.llm.client import LLMResult
from pipeline.models import Evidence, Lineage, Rejection, RejectionCode, Stage, Task
from pipeline.validate.context import Reject
from pipeline.validate.static import parse_candidate

#: calls an evolved task may have: the grammar stops a list that would run to the token cap
MAX_EVOLVED_CALLS = 8
MAX_ADDED_CALLS = 2  # what deepen adds to its parent's calls
#: a string length bound is *not* put in the schema: llama.cpp unrolls ``maxLength`` into one
#: grammar rule per character and refuses the grammar; the token cap bounds the text instead
MAX_QUESTION_CHARS = 1200


def _bounded(text: str) -> str:
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(f"longer than {MAX_QUESTION_CHARS} characters")
    return text


Question = Annotated[str, AfterValidator(_bounded)]

#: completion tokens per operator: what a good answer needs with room to spare (a question of
#: ~60 tokens, ~40 per call), not the server's cap; a reply cut at the cap is useless anyway
MAX_TOKENS: dict[str, int] = {
    "deepen": 320,  # one or two calls and the request
    "broaden": 520,
    "repair": 560,
    "paraphrase": 160,
}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ProposedCall(_Answer):
    tool: str
    arguments: dict[str, Any]  # required: the grammar then always writes it, {} included


class EvolvedTask(_Answer):
    question: Question = Field(min_length=1)
    calls: list[ProposedCall] = Field(min_length=1, max_length=MAX_EVOLVED_CALLS)


class DeepenAnswer(_Answer):
    """Only what deepen adds: the new calls (written first, so the request can describe them)
    and the whole new request. The parent's calls are kept by construction: a small model
    asked to repeat them returned them unchanged and added nothing."""

    new_calls: list[ProposedCall] = Field(min_length=1, max_length=MAX_ADDED_CALLS)
    question: Question = Field(min_length=1)


class RepairAnswer(_Answer):
    give_up: bool = False
    reason: str = ""
    question: Question = ""
    calls: list[ProposedCall] = Field(default_factory=list, max_length=MAX_EVOLVED_CALLS)


class ParaphraseAnswer(_Answer):
    question: Question = Field(min_length=1)


@lru_cache(maxsize=256)  # one class per tool set: the client caches schemas per class
def _call_model(names: tuple[str, ...]) -> type[ProposedCall]:
    tool_type: Any = Literal[names]  # an enum in the schema, a grammar rule on the server
    model: type[ProposedCall] = create_model(
        "ProposedCall", __base__=ProposedCall, tool=(tool_type, ...)
    )
    return model


@lru_cache(maxsize=256)
def evolved_model(names: tuple[str, ...]) -> type[EvolvedTask]:
    """``EvolvedTask`` whose calls may only name the given tools."""
    call = _call_model(names)
    model: type[EvolvedTask] = create_model(
        "EvolvedTask",
        __base__=EvolvedTask,
        calls=(list[call], Field(min_length=1, max_length=MAX_EVOLVED_CALLS)),  # type: ignore[valid-type]
    )
    return model


@lru_cache(maxsize=256)
def deepen_model(names: tuple[str, ...]) -> type[DeepenAnswer]:
    """``DeepenAnswer`` whose new calls may only name the given tools."""
    call = _call_model(names)
    model: type[DeepenAnswer] = create_model(
        "DeepenAnswer",
        __base__=DeepenAnswer,
        new_calls=(list[call], Field(min_length=1, max_length=MAX_ADDED_CALLS)),  # type: ignore[valid-type]
    )
    return model


@lru_cache(maxsize=256)
def repair_model(names: tuple[str, ...]) -> type[RepairAnswer]:
    call = _call_model(names)
    model: type[RepairAnswer] = create_model(
        "RepairAnswer",
        __base__=RepairAnswer,
        calls=(list[call], Field(default_factory=list, max_length=MAX_EVOLVED_CALLS)),  # type: ignore[valid-type]
    )
    return model


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


def _owner(envs: list[str], tool: str) -> str | None:
    owners = [env for env in envs if tool in ENVIRONMENTS[env].tool_specs()]
    return owners[0] if len(owners) == 1 else None


def structured_calls(envs: list[str], calls: list[ProposedCall]) -> list[dict[str, Any]]:
    """The answer's calls as task calls (``Call`` fields), qualified with their environment;
    a tool none (or several) of the environments has stays unqualified for the parser to
    reject by name."""
    converted = []
    for index, call in enumerate(calls, 1):
        owner = _owner(envs, call.tool)
        tool = f"{owner}.{call.tool}" if owner is not None else call.tool
        converted.append({"id": f"s{index}", "tool": tool, "arguments": call.arguments})
    return converted


def task_from_answer(
    parent: Task,
    operator: str,
    question: str,
    calls: list[ProposedCall],
    lineage: Lineage,
    raw: str | None,
) -> Candidate:
    """Build the task in the parent's environments and infer its dependencies."""
    data: dict[str, Any] = {
        "category": parent.category,
        "envs": parent.envs,
        "question": question,
        "initial_config": parent.initial_config,
        "calls": structured_calls(parent.envs, calls),
    }
    try:
        task = parse_candidate(json.dumps(data, ensure_ascii=False))
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


def _copied(
    parent: Task, operator: str, prompt: Prompt, question: str, raw: str | None, task_id: str
) -> Rejection | None:
    """A request that copies a clause of the worked example asks for something its calls do
    not do (the example is about another task), whatever else it gets right."""
    phrase = copied_phrase(prompt.shown, parent, question)
    if phrase is None:
        return None
    return Rejection(
        sample_id=task_id,
        stage=Stage.QUESTION,
        code=RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
        message=f"{operator} copied {phrase!r} from the worked example in its prompt",
        evidence=Evidence(diff=[f"- {parent.question}", f"+ {question}"]),
        raw=raw,
    )


async def _ask(
    client: LLMClient,
    stage: str,
    messages: list[dict[str, str]],
    output: type[BaseModel],
    template_hash: str,
) -> LLMResult[Any]:
    """``client.structured`` with the operator's completion budget (never above the configured
    cap: a user who lowered it meant it)."""
    budget = MAX_TOKENS.get(stage)
    result: LLMResult[Any] = await client.structured(
        stage=stage,
        messages=messages,
        output=output,
        template_hash=template_hash,
        max_tokens=None if budget is None else min(budget, client.config.max_tokens),
    )
    return result


async def evolve_with_llm(operator: str, parent: Task, client: LLMClient) -> Candidate:
    """``deepen`` (the parent's calls plus the model's new ones) or ``broaden`` (a new question
    and call sequence from the model)."""
    prompt = render(operator, parent)
    names = tool_names(parent.envs)
    output = deepen_model(names) if operator == "deepen" else evolved_model(names)
    result = await _ask(client, operator, prompt.messages, output, prompt.template_hash)
    if result.value is None:
        return _model_failure(parent, operator, result.error, result.raw)
    lineage = _lineage(parent, operator, client.model, prompt.template_hash)
    if isinstance(result.value, DeepenAnswer):
        kept = [ProposedCall(tool=call.function, arguments=call.arguments) for call in parent.calls]
        calls = kept + list(result.value.new_calls)
    else:
        calls = list(result.value.calls)
    question = result.value.question
    copied = _copied(parent, operator, prompt, question, result.raw, f"{parent.id}:{operator}")
    if copied is not None:
        return Candidate(operator, parent.id, rejection=copied)
    return task_from_answer(parent, operator, question, calls, lineage, result.raw)


async def paraphrase(parent: Task, client: LLMClient) -> Candidate:
    prompt = render("paraphrase", parent)
    result = await _ask(
        client, "paraphrase", prompt.messages, ParaphraseAnswer, prompt.template_hash
    )
    if result.value is None:
        return _model_failure(parent, "paraphrase", result.error, result.raw)
    lineage = _lineage(parent, "paraphrase", client.model, prompt.template_hash)
    task = parent.model_copy(
        update={"question": result.value.question, "expected": None, "lineage": lineage}
    ).with_content_id()
    # checked before validation: a respelt name would otherwise be reported as whatever
    # grounding makes of it ("hidden state"), not as the paraphrase's fault
    sample_id = task.id if task.id != parent.id else f"{parent.id}:paraphrase"
    copied = _copied(parent, "paraphrase", prompt, task.question, result.raw, sample_id)
    if copied is not None:
        return Candidate("paraphrase", parent.id, task=task, rejection=copied, raw=result.raw)
    problem = literal_changed(parent, task)
    if problem is not None:
        rejection = Rejection(
            sample_id=sample_id,
            stage=Stage.EVOLVE,
            code=RejectionCode.EVOLVE_LITERAL_CHANGED,
            message=problem,
            evidence=Evidence(diff=[f"- {parent.question}", f"+ {task.question}"]),
            raw=result.raw,
        )
        return Candidate("paraphrase", parent.id, task=task, rejection=rejection, raw=result.raw)
    return Candidate("paraphrase", parent.id, task=task, raw=result.raw)


async def repair(task: Task, rejection: Rejection, client: LLMClient) -> Candidate:
    """One repair attempt for a rejected task; giving up is a rejection that says so."""
    prompt = render("repair", task, rejection)
    output = repair_model(tool_names(task.envs))
    result = await _ask(client, "repair", prompt.messages, output, prompt.template_hash)
    if result.value is None:
        return _model_failure(task, "repair", result.error, result.raw)
    answer: RepairAnswer = result.value
    if answer.give_up or not answer.calls or not answer.question:
        gave_up = rejection.model_copy(
            update={"message": f"{rejection.message} (repair gave up: {answer.reason or 'no fix'})"}
        )
        return Candidate("repair", task.id, rejection=gave_up)
    lineage = _lineage(task, "repair", client.model, prompt.template_hash)
    return task_from_answer(task, "repair", answer.question, answer.calls, lineage, result.raw)
