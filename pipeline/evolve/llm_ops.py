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
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from pipeline.dependencies import infer_dependencies
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.candidate import Candidate
from pipeline.evolve.novelty import copied_phrase, literal_changed
from pipeline.evolve.options import (
    Option,
    action_unserved,
    dropped_value_kept,
    extreme_unserved,
    kept_read_unasked,
    kept_value_dropped,
    other_step_asked,
    other_words_copied,
    placeholder_value,
    purpose_unserved,
    removes_what_was_made,
    repeat_unserved,
    source_unnamed,
    sources_swapped,
    step_label_added,
    step_unasked,
    undoing_text,
    verbaliser,
)
from pipeline.evolve.prompts import Prompt, render, tool_names
from pipeline.llm import LLMClient
from pipeline.llm.client import LLMResult
from pipeline.models import Evidence, Rejection, RejectionCode, Stage, Task
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
    #: the looser answer whose schema a prompt shows in words (``LLMClient.structured``)
    described_as: ClassVar[type[BaseModel] | None] = None


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


class GuidedAnswer(_Answer):
    """deepen or broaden with checked options (:mod:`pipeline.evolve.options`): the step
    chosen, written out (its free arguments filled), then the whole new request."""

    new_call: ProposedCall
    question: Question = Field(min_length=1)


class RepairAnswer(_Answer):
    give_up: bool = False
    reason: str = ""
    question: Question = ""
    calls: list[ProposedCall] = Field(default_factory=list, max_length=MAX_EVOLVED_CALLS)


class ParaphraseAnswer(_Answer):
    question: Question = Field(min_length=1)


def _grammar_schema(node: Any, defs: dict[str, Any]) -> Any:
    """A tool's argument schema as a grammar needs it: references inlined (the answer schema
    has its own ``$defs``) and the prose left out (the prompt describes the tools; the schema
    only has to bound what may be written)."""
    if isinstance(node, list):
        return [_grammar_schema(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _grammar_schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            kept[key] = {name: _grammar_schema(field, defs) for name, field in value.items()}
        elif key not in _PROSE_KEYS:
            kept[key] = _grammar_schema(value, defs)
    return kept


_PROSE_KEYS = frozenset({"$defs", "title", "description", "default", "x-semantic-type"})


def _tool_call_model(env: str, tool: str) -> type[ProposedCall]:
    """One tool's call: its name and exactly its arguments in the schema (a grammar then
    cannot write a missing, extra or mistyped argument), while validation stays as loose as
    ``ProposedCall`` so a server without a grammar still gets its wrong arguments rejected by
    name (``static.bad_arguments``) with the call kept as evidence."""
    schema = ENVIRONMENTS[env].tool_specs()[tool].args_model.model_json_schema()
    arguments = _grammar_schema(schema, schema.get("$defs", {}))
    typed_arguments: Any = Annotated[dict[str, Any], WithJsonSchema(arguments)]
    return _call_of(tool, (tool,), arguments=(typed_arguments, ...))


def _call_of(name: str, tools: tuple[str, ...], **fields: Any) -> type[ProposedCall]:
    """``ProposedCall`` whose tool is one of ``tools`` (an enum or a const in the schema)."""
    tool_type: Any = Literal[tools]
    model: type[ProposedCall] = create_model(
        name, __base__=ProposedCall, tool=(tool_type, ...), **fields
    )
    return model


@lru_cache(maxsize=256)  # one type per environment set: the client caches schemas per type
def _call_type(envs: tuple[str, ...]) -> Any:
    """A call of the environments' tools, one schema branch per tool. A name two of the
    environments share keeps loose arguments (it is rejected later as ambiguous)."""
    owners: dict[str, list[str]] = {}
    for env in envs:
        for tool in ENVIRONMENTS[env].tool_specs():
            owners.setdefault(tool, []).append(env)
    branches: list[type[ProposedCall]] = []
    for tool, found in owners.items():
        if len(found) == 1:
            branches.append(_tool_call_model(found[0], tool))
        else:
            branches.append(_call_of(f"Call_{tool}", (tool,)))
    if len(branches) == 1:
        return branches[0]
    return Annotated[Union[tuple(branches)], Field(discriminator="tool")]  # noqa: UP007


def _with_calls(base: type[_Answer], call: Any) -> type[_Answer]:
    """``base`` with its calls of type ``call``, their bounds and default kept."""
    field = "new_calls" if base is DeepenAnswer else "calls"
    info = base.model_fields[field]
    calls: Any = Annotated[(list[call], *info.metadata)]
    default = Field(default_factory=list) if info.default_factory is not None else Field()
    fields: dict[str, Any] = {field: (calls, default)}
    model: type[_Answer] = create_model(base.__name__, __base__=base, **fields)
    return model


def _answer_model(base: type[_Answer], envs: tuple[str, ...]) -> type[_Answer]:
    model = _with_calls(base, _call_type(envs))
    # in words, calls are ``{tool, arguments}`` with the tool names as an enum: the per-tool
    # schema would double a small local model's prompt, and a grammar enforces it anyway
    model.described_as = _with_calls(base, _call_of("ProposedCall", tool_names(list(envs))))
    return model


def _option_branch(option: Option) -> dict[str, Any]:
    """The schema of one option: its tool, its fixed arguments as constants, and each free
    argument as the tool's schema has it."""
    env, tool = option.tool.split(".", 1)
    schema = ENVIRONMENTS[env].tool_specs()[tool].args_model.model_json_schema()
    arguments = _grammar_schema(schema, schema.get("$defs", {}))
    properties: dict[str, Any] = {
        name: {"const": value} if _literal_safe(value) else arguments["properties"][name]
        for name, value in option.fixed.items()
    }
    properties |= {name: arguments["properties"][name] for name in option.free}
    return {
        "type": "object",
        "properties": {
            "tool": {"const": tool},
            "arguments": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
        "required": ["tool", "arguments"],
    }


def _literal_safe(value: Any) -> bool:
    """Whether llama.cpp's schema converter can write ``value`` as a grammar literal: a string
    with a quote, a backslash, a line break or a non-ASCII letter comes out mis-escaped and
    the server refuses the whole grammar (HTTP 500 on every request about a text document).
    Such a value keeps its type in the schema instead; an answer that does not copy it exactly
    is then none of the steps offered."""
    if isinstance(value, str):
        return value.isascii() and value.isprintable() and '"' not in value and "\\" not in value
    return isinstance(value, int | float | bool) or value is None


def _options_key(options: tuple[Option, ...]) -> str:
    return json.dumps(
        [[o.tool, o.fixed, list(o.free)] for o in options], sort_keys=True, ensure_ascii=False
    )


@lru_cache(maxsize=256)  # per distinct option set, so the client's schema cache stays bounded
def _guided_model(key: str, names: tuple[str, ...]) -> type[GuidedAnswer]:
    options = [Option(0, tool, fixed, tuple(free)) for tool, fixed, free in json.loads(key)]
    branches = [_option_branch(option) for option in options]
    choice: Any = Annotated[
        ProposedCall, WithJsonSchema(branches[0] if len(branches) == 1 else {"anyOf": branches})
    ]
    model: type[GuidedAnswer] = create_model(
        "GuidedAnswer", __base__=GuidedAnswer, new_call=(choice, ...)
    )
    model.described_as = create_model(
        "GuidedAnswer", __base__=GuidedAnswer, new_call=(_call_of("ProposedCall", names), ...)
    )
    return model


def guided_model(options: tuple[Option, ...], envs: tuple[str, ...]) -> type[GuidedAnswer]:
    """The answer to a prompt with options: the new call can only be one of them."""
    return _guided_model(_options_key(options), tool_names(list(envs)))


@lru_cache(maxsize=256)
def evolved_model(envs: tuple[str, ...]) -> type[EvolvedTask]:
    """``EvolvedTask`` whose calls may only be the environments' tools with their arguments."""
    model: type[EvolvedTask] = _answer_model(EvolvedTask, envs)  # type: ignore[assignment]
    return model


@lru_cache(maxsize=256)
def deepen_model(envs: tuple[str, ...]) -> type[DeepenAnswer]:
    """``DeepenAnswer`` whose new calls may only be the environments' tools."""
    model: type[DeepenAnswer] = _answer_model(DeepenAnswer, envs)  # type: ignore[assignment]
    return model


@lru_cache(maxsize=256)
def repair_model(envs: tuple[str, ...]) -> type[RepairAnswer]:
    model: type[RepairAnswer] = _answer_model(RepairAnswer, envs)  # type: ignore[assignment]
    return model


class EndpointUnreachable(ConnectionError):
    """The LLM endpoint could not be reached after every retry: the shard stops unfinished, so
    a rerun of the same command asks again, instead of every candidate being filed as the
    model's malformed answer (a server that died mid-run turned a whole bench run into 36
    such rejections). A ``ConnectionError``, so the CLI reports it in one line."""


def _answered(result: LLMResult[Any], operator: str) -> None:
    if result.unreachable:
        raise EndpointUnreachable(
            f"the LLM endpoint is unreachable ({operator}: {result.error}); finished shards are"
            " kept: start the server and rerun the same command to resume"
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
    raw: str | None,
    *,
    model: str | None = None,
    prompt_hash: str | None = None,
    words: Literal["model", "code"] | None = None,
) -> Candidate:
    """Build the task in the parent's environments and infer its dependencies; it is the
    parent's child (``Task.derive``) made by ``operator`` with ``model`` and the prompt of
    ``prompt_hash``; ``words`` says who wrote the request of a chosen step."""
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
    built = parent.derive(
        operator,
        model=model,
        prompt_hash=prompt_hash,
        question=task.question,
        initial_config=task.initial_config,
        calls=inferred,
    )
    if words is not None:  # provenance only: not part of the content id
        built = built.model_copy(
            update={"lineage": built.lineage.model_copy(update={"words": words})}
        )
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


def _unasked(
    parent: Task,
    operator: str,
    option: Option,
    question: str,
    raw: str | None,
    arguments: dict[str, Any] | None = None,
    by_model: bool = True,
    offered: Sequence[Option] = (),
) -> Rejection | None:
    """The request must ask for the step chosen, say where its earlier values come from (with
    the step's ``arguments``), ask (``by_model``) for no tool no call makes, give a step
    that changes state no purpose of checking and number no step, and, broader, for no step it
    dropped: the calls are checked by construction, so what can go wrong is the words."""
    # code's words ask for the step by construction ("show me the latest quote" for
    # get_stock_info, whose name says "stock")
    problem = step_unasked(parent, question, option) if by_model else None
    if problem is None and arguments is not None:
        problem = source_unnamed(parent, question, option, arguments)
    if problem is None and arguments is not None:
        problem = sources_swapped(parent, question, option, arguments)
    if problem is None and arguments is not None and by_model:
        # the model's words only: code's name the chain's calls, in nouns another tool's
        # name may share ("the JSON text" beside pretty_print_json)
        problem = other_step_asked(parent, question, option, arguments)
    if problem is None and by_model:  # code's words state each kept call's values, in words
        problem = kept_value_dropped(parent, question, option)
    if problem is None and by_model:
        problem = other_words_copied(parent, question, option, offered)
    if problem is None and by_model:
        problem = kept_read_unasked(parent, question, option)
    if problem is None and by_model:
        problem = purpose_unserved(parent, question, option)
    if problem is None and by_model:
        problem = step_label_added(parent, question, option)
    if problem is None and by_model:
        problem = action_unserved(parent, question, option)
    if problem is None and by_model:
        problem = repeat_unserved(parent, question, option)
    if problem is None and by_model and arguments is not None:
        problem = extreme_unserved(parent, question, option, arguments)
    code = RejectionCode.EVOLVE_STEP_UNASKED
    if problem is None and operator == "broaden":
        problem = dropped_value_kept(parent, question, option, arguments)
        code = RejectionCode.EVOLVE_DROPPED_STEP_ASKED
    if problem is None:
        return None
    return Rejection(
        sample_id=f"{parent.id}:{operator}",
        stage=Stage.EVOLVE,
        code=code,
        message=f"{operator}: {problem}",
        evidence=Evidence(diff=[f"- {parent.question}", f"+ {question}"]),
        raw=raw,
    )


def _value_problem(
    parent: Task, option: Option, arguments: dict[str, Any]
) -> tuple[RejectionCode, str] | None:
    """What is wrong with the values the model filled in for an option's free arguments: a
    stand-in, a text that takes back the request, or values that make the step tell nothing."""
    stand_in = placeholder_value(option, arguments)
    if stand_in is not None:
        return RejectionCode.EVOLVE_PLACEHOLDER_VALUE, stand_in
    if option.tells_nothing(parent, arguments):
        return (
            RejectionCode.EVOLVE_NOT_DEEPER,
            f"with the values the model chose, {option.function} returns only values already known",
        )
    undoing = undoing_text(parent, option, arguments) or removes_what_was_made(
        parent, option, arguments
    )
    if undoing is not None:
        return RejectionCode.EVOLVE_UNDOES_REQUEST, undoing
    return None


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


def _no_step(parent: Task, operator: str) -> Rejection:
    return Rejection(
        sample_id=f"{parent.id}:{operator}",
        stage=Stage.EVOLVE,
        code=RejectionCode.EVOLVE_NO_STEP,
        message=(
            f"{operator}: execution finds no step that takes a result of this task's calls;"
            " --free-steps lets the model write its own"
        ),
        evidence=Evidence(),
    )


async def evolve_with_llm(
    operator: str, parent: Task, client: LLMClient, offer_steps: bool = True
) -> Candidate:
    """``deepen`` (the parent's calls plus the model's new ones) or ``broaden`` (a new question
    and call sequence from the model)."""
    prompt = render(operator, parent, offer_steps=offer_steps)
    if offer_steps and not prompt.options:
        # asked to invent steps, the 1.5B model wrote none that a blind reader found valid
        # (runs llm17 to llm20: a round-trip conversion, "sort" over one line, ...)
        return Candidate(operator, parent.id, rejection=_no_step(parent, operator))
    envs = tuple(parent.envs)
    output: type[BaseModel]
    if prompt.options:
        output = guided_model(prompt.options, envs)
    else:
        output = deepen_model(envs) if operator == "deepen" else evolved_model(envs)
    result = await _ask(client, operator, prompt.messages, output, prompt.template_hash)
    _answered(result, operator)
    if result.value is None:
        return _model_failure(parent, operator, result.error, result.raw)
    words: Literal["model", "code"] | None = None
    if isinstance(result.value, GuidedAnswer):
        chosen = result.value.new_call
        option = next((o for o in prompt.options if o.matches(chosen.tool, chosen.arguments)), None)
        if option is None:  # a server without a grammar wrote a step it was not offered
            error = f"{chosen.tool} with these arguments is none of the steps offered"
            return _model_failure(parent, operator, error, result.raw)
        value_problem = _value_problem(parent, option, chosen.arguments)
        if value_problem is not None:
            # a value only the model can give: code has no words to put in its place
            code, problem = value_problem
            rejection = Rejection(
                sample_id=f"{parent.id}:{operator}",
                stage=Stage.EVOLVE,
                code=code,
                message=f"{operator}: {problem}",
                evidence=Evidence(diff=[f"- {parent.question}", f"+ {result.value.question}"]),
                raw=result.raw,
            )
            return Candidate(operator, parent.id, rejection=rejection)
        calls = [
            ProposedCall(tool=call.function, arguments=call.arguments)
            for call in option.calls(parent, chosen.arguments)
        ]
        question = result.value.question
        words = "model"
        unasked = _unasked(
            parent, operator, option, question, result.raw, chosen.arguments,
            offered=prompt.options,
        )  # fmt: skip
        if unasked is not None:
            # the step is right by construction; the words for it are code's where the
            # model's miss it (asked again for words, the 1.5B model still missed 5 of 12: llm19)
            draft = option.draft(parent, chosen.arguments, verbaliser())
            checked = _unasked(
                parent, operator, option, draft or "", None, chosen.arguments, by_model=False
            )
            if draft is None or checked is not None:
                return Candidate(operator, parent.id, rejection=unasked)
            question, words = draft, "code"
        result.value.question = question
    elif isinstance(result.value, DeepenAnswer):
        kept = [ProposedCall(tool=call.function, arguments=call.arguments) for call in parent.calls]
        calls = kept + list(result.value.new_calls)
        # the words must ask for each added call here too (run llm19: a conversion the request
        # never mentions, appended to an unchanged request)
        for added in result.value.new_calls:
            owner = _owner(parent.envs, added.tool)
            if owner is None:
                continue  # an unknown tool: the parser rejects it by name
            step = Option(len(parent.calls), f"{owner}.{added.tool}", {})
            unasked = _unasked(parent, operator, step, result.value.question, result.raw)
            if unasked is not None:
                return Candidate(operator, parent.id, rejection=unasked)
    else:
        calls = list(result.value.calls)
    question = result.value.question
    copied = _copied(parent, operator, prompt, question, result.raw, f"{parent.id}:{operator}")
    if copied is not None:
        return Candidate(operator, parent.id, rejection=copied)
    return task_from_answer(
        parent,
        operator,
        question,
        calls,
        result.raw,
        model=client.model,
        prompt_hash=prompt.template_hash,
        words=words,
    )


async def paraphrase(parent: Task, client: LLMClient) -> Candidate:
    prompt = render("paraphrase", parent)
    result = await _ask(
        client, "paraphrase", prompt.messages, ParaphraseAnswer, prompt.template_hash
    )
    _answered(result, "paraphrase")
    if result.value is None:
        return _model_failure(parent, "paraphrase", result.error, result.raw)
    task = parent.derive(
        "paraphrase",
        model=client.model,
        prompt_hash=prompt.template_hash,
        question=result.value.question,
    )
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
    output = repair_model(tuple(task.envs))
    result = await _ask(client, "repair", prompt.messages, output, prompt.template_hash)
    _answered(result, "repair")
    if result.value is None:
        return _model_failure(task, "repair", result.error, result.raw)
    answer: RepairAnswer = result.value
    if answer.give_up or not answer.calls or not answer.question:
        gave_up = rejection.model_copy(
            update={"message": f"{rejection.message} (repair gave up: {answer.reason or 'no fix'})"}
        )
        return Candidate("repair", task.id, rejection=gave_up)
    return task_from_answer(
        task,
        "repair",
        answer.question,
        answer.calls,
        result.raw,
        model=client.model,
        prompt_hash=prompt.template_hash,
    )
