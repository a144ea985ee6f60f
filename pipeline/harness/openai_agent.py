"""An agent backed by any OpenAI-compatible chat endpoint, speaking ``harness.protocol``.

Each step tells the model what became of its last reply (per call: started with its call id
and result time, refused, finished, waited), the results delivered since, the calls still
running and the unfinished tasks — as prose lines that lead with the call id, so a model that
copies them makes no call — then asks for the next reply and turns it into actions: native
``tool_calls`` first, else calls written in the text (``<tool_call>`` blocks or JSON). Which
path each reply took is logged (``model_reply`` events) and counted in the episode's ``agent``
event.

What the endpoint supports is the client's memory (``LLMClient.capabilities``, kept in the
cache file per endpoint and model): a server known to refuse ``tools``, or known to take them
and answer with calls written as text (``unused``), gets the tools spelled out in the prompt
from the first request, and the episode's ``agent`` event says why (``tools_why``, with the
time the memory learned it); one that refuses them now is asked again without them. The agent
is what records ``unused``: only it can tell a call written as text from prose. The token cap
goes out under the name the endpoint takes (``max_tokens`` or ``max_completion_tokens``), which
the client also learns.

The conversation is kept within the model's context window: before each request its size is
estimated, and when it would not fit, the oldest exchanges are replaced by one message that
restates every result the unfinished tasks may still need (the calls still running are listed
in every message anyway). A context-overflow refusal is handled as such — logged, the window
and the tokens-per-character ratio learned from the server's numbers when it gives them, and
retried trimmed — never taken for a tools refusal. What is learned about the window is shared
by the episodes of one ``openai_agent_factory``.

Nothing the model says can crash an episode. A reply with nothing to act on is reported back:
while calls are pending it counts as a wait; with nothing pending it is answered at once (an
empty step would end the episode). An identical call (same task, tool and arguments) made more
than ``max_identical_calls`` times is stopped, logged (``repeated_call``) and scored as the
``repeated_call`` failure label. After ``max_invalid_replies`` unusable replies in a row, a
failed request, or ``max_turns`` model requests, the agent stops: it returns no actions, so the
episode ends once the pending calls are delivered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.harness.protocol import (
    ECHO,
    FINISH,
    NEXT_IDLE,
    NEXT_RUNNING,
    OPENING,
    REPEAT,
    RUNNING,
    WAIT,
    ProtocolError,
    WrittenCall,
    agent_tools,
    call_hint,
    call_key,
    call_label,
    openai_name,
    parse_content_calls,
    parse_native_calls,
    reply_text,
    result_line,
    running_line,
    started_line,
    system_prompt,
    task_aliases,
    text_form,
    usage_hint,
    written_call,
)
from pipeline.harness.sim import (
    Ack,
    Action,
    CallAction,
    Delivery,
    Episode,
    FinishAction,
    Observation,
    WaitAction,
)
from pipeline.llm.client import ChatResult, LLMClient

MAX_LOGGED_RAW = 2000  # characters of a bad reply kept in the episode log
REFUSED_STATUS = frozenset({400, 422})  # how servers without tool support refuse ``tools``
MESSAGE_OVERHEAD = 12  # characters a chat template adds around each message (role, markers)
LOW_WATER = 0.6  # a trim leaves the conversation at this share of the budget, so the
# server's prompt cache is broken once per trim, not on every turn after the first one
MIN_CHARS_PER_TOKEN = 1.0
MAX_BOARD_CALLS = 6  # calls listed per task on the board at the end of each message


@dataclass(frozen=True)
class OpenAIAgentSettings:
    stage: str = "agent"  # usage-ledger stage of the agent's requests
    native_tools: bool = True  # send the tool schemas; False: full signatures in the prompt
    max_turns: int | None = None  # model requests per episode, retries of bad replies included
    max_invalid_replies: int = 3  # in a row, before the agent gives up
    #: None (the default): every result is shown whole, however long (BFCL's long-context
    #: variant exists to test that). A number caps each result's JSON at that many characters,
    #: and the cut is stated to the model and logged, never silent.
    max_result_chars: int | None = None
    name: str | None = None  # defaults to "openai:<model>"
    #: the model's context window in tokens, if known. None: learned from the first
    #: context-overflow refusal (servers state the window and the prompt size in it), and
    #: until then the conversation is sent whole
    context_tokens: int | None = None
    #: completion budget of one reply: several calls fit; a rambling reply is cut
    reply_tokens: int = 512
    #: starting estimate of characters per token for the size of a request; lowered when the
    #: server reports the real prompt size (JSON and ids tokenise densely, hence below 4)
    chars_per_token: float = 3.0
    #: identical calls (task, tool, arguments) let through per episode; the ground truth
    #: never repeats a call more than twice (``cd`` into the same folder twice)
    max_identical_calls: int = 2
    #: 0: the most likely call; resampling a tool call buys nothing and breaks replay
    temperature: float | None = 0.0
    max_overflows: int = 3  # context-overflow refusals in a row before the agent gives up
    #: after this many replies (across a factory's episodes) that were offered tools and
    #: still wrote their calls as text, with no native call ever, the tool schemas are left
    #: out and the tools described in the prompt (about a quarter of the prompt for the same
    #: calls), and the endpoint memory records it, so later runs start without them; None
    #: keeps offering them, whatever the memory says (the way to try a server again after
    #: giving it a tool-call chat format: a native reply then updates the memory)
    tools_unused_after: int | None = 2


@dataclass
class ModelMemory:
    """What the episodes of one factory learned about the model and its server: the context
    window, and whether the server turns calls into native ``tool_calls`` at all."""

    context_tokens: int | None
    chars_per_token: float
    native_replies: int = 0  # replies that carried native tool calls
    text_replies_with_tools: int = 0  # replies offered tools that wrote their calls as text
    learned: list[str] = field(default_factory=list)

    def tools_unused(self, after: int | None) -> bool:
        """The server takes the tool schemas but never returns a native call (llama.cpp's
        server without a tool-call chat format): the schemas only cost context."""
        if after is None or self.native_replies:
            return False
        return self.text_replies_with_tools >= after


_WINDOW = re.compile(r"(?:maximum context length is|context window of|n_ctx[^0-9]{0,12})\s*(\d+)")
_PROMPT = re.compile(
    r"(?:\((\d+) in the messages|requested tokens \((\d+)\)|messages resulted in (\d+) tokens"
    r"|prompt[^0-9.]{0,20}\((\d+) tokens\))",
    re.IGNORECASE,
)


def overflow_numbers(message: str) -> tuple[int | None, int | None]:
    """(context window, prompt tokens) as an overflow error states them, where it does
    (llama.cpp's server, llama-cpp-python, vLLM and OpenAI word them differently)."""
    window = _WINDOW.search(message.lower())
    prompt = _PROMPT.search(message)
    prompt_tokens = next((int(g) for g in prompt.groups() if g), None) if prompt else None
    return (int(window.group(1)) if window else None), prompt_tokens


@dataclass(frozen=True)
class _Reply:
    """One call of the model's last reply and what became of it."""

    action: Action | ProtocolError
    tool_call_id: str | None  # native calls are answered by id; calls in the text are not


@dataclass
class _Call:
    """A call the harness accepted or refused, as the agent tells the model about it."""

    call_id: str
    task_id: str
    tool: str
    arguments: dict[str, Any]
    eta: float | None
    delivered: Delivery | None = None
    shown_in: int = -1  # the block whose user message showed the result


@dataclass
class _Block:
    """Messages that stay or go together: a reply, its tool answers and the next user
    message (the first block is the opening user message alone)."""

    number: int
    messages: list[dict[str, Any]]
    #: a reply written as text: the calls it made, which its message shows in the reply format
    said: list[WrittenCall] | None = None


def _size(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += len(message.get("content") or "") + MESSAGE_OVERHEAD
        if message.get("tool_calls"):
            total += len(json.dumps(message["tool_calls"], ensure_ascii=False))
    return total


class OpenAIAgent:
    """One episode's conversation with the model (build one per episode)."""

    def __init__(
        self,
        episode: Episode,
        client: LLMClient,
        settings: OpenAIAgentSettings | None = None,
        memory: ModelMemory | None = None,
    ) -> None:
        self.settings = settings or OpenAIAgentSettings()
        self.name = self.settings.name or f"openai:{client.model}"
        self.client = client
        self.episode = episode
        self.memory = memory or ModelMemory(
            self.settings.context_tokens, self.settings.chars_per_token
        )
        self.task_ids = list(episode.task_ids)
        self.aliases = task_aliases(episode.instance)  # what the model calls each task
        self._real = {**{task: task for task in self.task_ids}}
        self._real.update({alias: task for task, alias in self.aliases.items()})
        #: why the tools are described in the prompt instead of offered (None while offered)
        self.tools_why = _tools_left_out(client, self.settings)
        native = self.tools_why is None
        self.tools = agent_tools(episode.instance, self.aliases) if native else None
        self.system = {
            "role": "system",
            "content": system_prompt(episode.instance, not native, self.aliases),
        }
        self._blocks: list[_Block] = []
        self._summary: dict[str, Any] | None = None  # stands for the trimmed blocks
        self._calls: dict[str, _Call] = {}
        self._issued: dict[str, list[str]] = {}  # identical-call key -> call ids
        self._keys: set[str] = set()  # the calls made, as the model names them (call_key)
        self.requests = 0
        self.invalid_streak = 0
        self.stopped: str | None = None  # why the agent gave up
        self._replies: list[_Reply] = []  # the last reply's calls, awaiting feedback
        self._note: str | None = None  # said once in the next user message
        self._report: dict[str, Any] | None = None  # the episode's ``agent`` event
        self._cost: dict[str, Any] = {}  # of the last request

    # -- one step --

    async def __call__(self, observation: Observation) -> list[Action]:
        if self._report is None:
            self._report = self._start_report(observation)
        if self.stopped is not None:
            return []
        self._render(observation)
        overflows = 0
        while True:
            limit = self.settings.max_turns
            if limit is not None and self.requests >= limit:
                return self._stop(observation, f"reached the limit of {limit} model requests")
            unused = self._tools_unused() if self.tools is not None else None
            if unused is not None:
                self._drop_tools(unused)
                self._log(observation, "tools_unused", f"{unused}: the tools go in the prompt")
            messages = self._fit(observation)
            if messages is None:
                return self._stop(
                    observation,
                    f"the prompt cannot fit the model's context window of"
                    f" {self.memory.context_tokens} tokens",
                )
            started = time.monotonic()
            result = await self.client.chat(
                stage=self.settings.stage,
                messages=messages,
                tools=self.tools,
                tool_choice="auto" if self.tools else None,
                temperature=self.settings.temperature,
                max_tokens=self._reply_tokens(),
            )
            self._costs(result, time.monotonic() - started)
            self.requests += 1
            self._count("requests", result.requests)
            if result.error is not None and result.refusal == "context_overflow":
                overflows += 1
                self._overflowed(observation, result, messages)
                if overflows >= self.settings.max_overflows:
                    return self._stop(observation, f"{overflows} context overflows in a row")
                continue
            if result.error is not None and self._tools_refused(result):
                self._log(observation, "tools_refused", result.error)
                continue
            if result.error is not None:
                return self._stop(observation, f"model request failed: {result.error}")
            self._replies = self._read(result, observation)
            actions = [r.action for r in self._replies if not isinstance(r.action, ProtocolError)]
            work: list[Action] = [a for a in actions if not isinstance(a, WaitAction)]
            waits = any(isinstance(a, WaitAction) for a in actions)
            if work or waits:
                self.invalid_streak = 0
                return work or [WaitAction()]
            if observation.pending and self._only_running_copies():
                # the model sent its running calls again: it is waiting for them, so it waits
                self._show_as_wait()
                return [WaitAction()]
            if observation.pending and not self._replies:
                # nothing call-shaped while calls run (the 1.5B model answered such turns with
                # an empty message): a wait, not an unusable reply — each one takes a result
                # off the queue, so they cannot go on for ever
                self._note = "Your reply made no call, so it counted as a wait."
                self._show_as_wait()
                return [WaitAction()]
            self.invalid_streak += 1
            problem = self._problem(result)
            self._log(observation, "invalid_reply", problem, result)
            if self.invalid_streak >= self.settings.max_invalid_replies:
                return self._stop(observation, f"{self.invalid_streak} unusable replies in a row")
            if observation.pending:
                self._note = f"{problem} It counted as a wait."  # said with the next delivery
                self._show_as_wait()
                return [WaitAction()]
            self._note = problem
            self._forget_reply()
            # nothing pending: an empty step would end the episode, so answer it right away
            self._render(Observation(observation.now, [], [], 0, observation.finished))

    def _costs(self, result: ChatResult, seconds: float) -> None:
        """What the request cost, for its ``model_reply`` event and the episode's totals: the
        server's token counts (kept with a cached answer too) and the seconds waited (about
        0 for a cached answer)."""
        self._cost = {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "seconds": round(seconds, 3),
        }
        if self._report is not None:
            for name, value in self._cost.items():
                self._report[name] = round(self._report[name] + value, 3)

    def _reply_tokens(self) -> int:
        """The reply budget, never above the client's configured cap (a user who lowered it
        meant it)."""
        config = getattr(self.client, "config", None)
        cap = getattr(config, "max_tokens", None)
        wanted = self.settings.reply_tokens
        return min(wanted, cap) if isinstance(cap, int) else wanted

    def _tools_unused(self) -> str | None:
        """Why the tool schemas should stop being sent, if they should: this run's replies
        wrote their calls as text and never natively (recorded in the endpoint memory for
        later runs), or the memory says so (another run or process learned it meanwhile)."""
        after = self.settings.tools_unused_after
        if after is None:
            return None
        if self.memory.tools_unused(after):
            why = (
                f"{self.memory.text_replies_with_tools} replies offered the tool schemas wrote"
                " their calls as text, none natively (harness agent)"
            )
            record = getattr(self.client, "tools_unused", None)
            if callable(record):  # a stand-in client without endpoint memory has none
                record(why)
            return why
        capabilities = _capabilities(self.client)
        if capabilities.get("tools") == "unused":
            return f"endpoint memory: {capabilities.get('tools_why')}"
        return None

    def _tools_refused(self, result: ChatResult) -> bool:
        """A server that rejects the tools parameter (vLLM without auto tool choice, ...):
        go on without it, the tools described in the system prompt, if nothing relies on
        native calls yet. A context overflow never lands here (it is handled before)."""
        if self.tools is None:
            return False
        if result.refusal != "tools" and result.status not in REFUSED_STATUS:
            return False
        if any(m.get("tool_calls") for block in self._blocks for m in block.messages):
            return False
        self._drop_tools(f"refused: {result.error}")
        return True

    def _drop_tools(self, why: str) -> None:
        self.tools = None
        self.tools_why = why
        prompt = system_prompt(self.episode.instance, True, self.aliases)
        self.system = {"role": "system", "content": prompt}
        for block in self._blocks:  # earlier replies now shown in the prompt's format
            if block.said is not None:
                block.messages[0]["content"] = reply_text(block.said, True)
        if self._report is not None:
            self._report["tools"] = "prompt"
            self._report["tools_why"] = why

    def _problem(self, result: ChatResult) -> str:
        """Why nothing was done, and (when no call could be read) how to write one."""
        hint = call_hint(self.tools is None)
        if any(
            isinstance(r.action, ProtocolError) and r.action.kind == ECHO for r in self._replies
        ):
            return (
                "Your reply only had lines like '- c1 (task T1) ...': those report calls, they"
                f" make none, so nothing was done. {hint}"
            )
        if result.finish_reason == "length":
            return (
                f"Your reply was cut at {self._reply_tokens()} tokens before any complete"
                " call. Reply with the calls only, and fewer of them."
            )
        if not self._replies:
            return f"Your reply contained no function call, so nothing was done. {hint}"
        return "None of the calls in your reply could be carried out (see above)."

    def _stop(self, observation: Observation, reason: str) -> list[Action]:
        self.stopped = reason
        self._log(observation, "agent_stopped", reason)
        return []

    def _log(
        self,
        observation: Observation,
        kind: str,
        message: str,
        result: ChatResult | None = None,
        **data: Any,
    ) -> None:
        """Into the episode's event log, beside the harness's own events."""
        event: dict[str, Any] = {
            "event": kind,
            "sim_time": round(observation.now, 6),
            "agent": self.name,
            "message": message,
            **data,
        }
        if result is not None:
            event["raw"] = (result.raw or "")[:MAX_LOGGED_RAW]
        self.episode.trace.events.append(event)

    # -- the episode's ``agent`` event: how the model was reached, kept up to date --

    def _start_report(self, observation: Observation) -> dict[str, Any]:
        report: dict[str, Any] = {
            "event": "agent",
            "sim_time": round(observation.now, 6),
            "agent": self.name,
            "tools": "native" if self.tools else "prompt",
            "tools_why": self.tools_why,  # why the tools are in the prompt, None while offered
            "tools_offered": [
                tool["function"]["name"] for tool in agent_tools(self.episode.instance)
            ],
            "task_names": self.aliases,
            "replies": {"native": 0, "tagged": 0, "json": 0, "lines": 0, "none": 0},
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "seconds": 0.0,
            "context_overflows": 0,
            "trims": 0,
            "repeated_calls": 0,
            "running_copies": 0,
            "echoes": 0,
        }
        self.episode.trace.events.append(report)  # the dict is updated in place until the end
        return report

    def _count(self, name: str, amount: int = 1) -> None:
        if self._report is not None:
            self._report[name] += amount

    # -- fitting the context window --

    def _budget_chars(self) -> int | None:
        """Characters the conversation may take (tools and system prompt included), with room
        for the reply and 5% for the estimate's error; None while the window is unknown."""
        memory = self.memory
        if memory.context_tokens is None:
            return None
        tokens = memory.context_tokens - self._reply_tokens()
        return max(0, int(tokens * 0.95 * memory.chars_per_token))

    def _fixed_chars(self) -> int:
        tools = len(json.dumps(self.tools, ensure_ascii=False)) if self.tools else 0
        return tools + _size([self.system])

    def _assemble(self) -> list[dict[str, Any]]:
        head = [self.system] + ([self._summary] if self._summary else [])
        return head + [m for block in self._blocks for m in block.messages]

    def _fit(self, observation: Observation) -> list[dict[str, Any]] | None:
        """The messages to send, trimmed to the budget when needed; None if even the system
        prompt and the latest exchange cannot fit (after giving up the tool schemas)."""
        budget = self._budget_chars()
        before = self._fixed_chars() + _size(self._assemble()[1:])
        if budget is None or before <= budget:
            return self._assemble()
        target = int(budget * LOW_WATER)
        keep = len(self._blocks) - 1
        while keep > 0:  # keep as many recent blocks as fit under the low-water mark
            summary = self._summary_for(self._blocks[keep - 1 :])
            size = self._fixed_chars() + _size([summary, *self._messages_from(keep - 1)])
            if size > target:
                break
            keep -= 1
        dropped = keep
        if dropped:
            self._summary = self._summary_for(self._blocks[keep:])
            self._blocks = self._blocks[keep:]
        after = self._fixed_chars() + _size(self._assemble()[1:])
        if after > budget and self.tools is not None:
            why = "the tool schemas do not fit the context"
            self._drop_tools(why)  # the schemas are the largest fixed part; signatures are shorter
            self._log(observation, "tools_dropped", why)
            after = self._fixed_chars() + _size(self._assemble()[1:])
        if dropped or after != before:
            self._count("trims")
            self._log(
                observation,
                "history_trimmed",
                f"{dropped} earlier exchanges replaced by a summary of the results still needed",
                estimated_tokens_before=round(before / self.memory.chars_per_token),
                estimated_tokens_after=round(after / self.memory.chars_per_token),
                context_tokens=self.memory.context_tokens,
            )
        return self._assemble() if after <= budget else None

    def _messages_from(self, index: int) -> list[dict[str, Any]]:
        return [m for block in self._blocks[index:] for m in block.messages]

    def _summary_for(self, kept: list[_Block]) -> dict[str, Any]:
        """The message that stands for every block before ``kept``: each result delivered for
        a task that is not finished and not shown in a kept block (what is running is in
        every user message)."""
        shown = {block.number for block in kept}
        finished = set(self.episode.trace.finished)
        lines = ["Earlier messages were removed to save space. Results you already received:"]
        for call in self._calls.values():
            delivery = call.delivered
            if delivery is None or call.shown_in in shown or call.task_id in finished:
                continue
            label = self._label(call.call_id, call.task_id, call.tool, call.arguments)
            lines.append(
                result_line(label, delivery.result, delivery.error, self.settings.max_result_chars)
            )
        if len(lines) == 1:
            lines.append("(none that an unfinished task still needs)")
        done = [self._name(task) for task in self.task_ids if task in finished]
        if done:
            lines.append(f"Finished tasks: {', '.join(done)}.")
        return {"role": "user", "content": "\n".join(lines)}

    def _overflowed(
        self, observation: Observation, result: ChatResult, messages: list[dict[str, Any]]
    ) -> None:
        """Learn from a context-overflow refusal what the request really cost."""
        self._count("context_overflows")
        memory = self.memory
        window, prompt = overflow_numbers(result.error or "")
        sent = self._fixed_chars() + _size(messages[1:])
        if prompt is not None and prompt > 0:
            ratio = sent / prompt
            memory.chars_per_token = max(MIN_CHARS_PER_TOKEN, min(memory.chars_per_token, ratio))
        if window is not None:
            memory.context_tokens = window
        else:  # not stated: the window holds at most three quarters of what was sent
            estimate = int(sent / memory.chars_per_token * 0.75) + self._reply_tokens()
            known = memory.context_tokens
            memory.context_tokens = estimate if known is None else min(known, estimate)
        note = (
            f"context window {memory.context_tokens} tokens,"
            f" {memory.chars_per_token:.2f} characters per token"
        )
        memory.learned.append(note)
        self._log(
            observation,
            "context_overflow",
            f"the request did not fit the model's context; retrying trimmed ({note})",
            error=result.error,
            context_tokens=window,
            prompt_tokens=prompt,
        )

    # -- reading a reply --

    def _read(self, result: ChatResult, observation: Observation) -> list[_Reply]:
        """The reply as calls (starting a new block with it). Finishing a finished task,
        waiting with nothing pending and an identical call over the bound are errors here:
        the harness would ignore the first silently and end the episode on the second."""
        finished = set(observation.finished)
        replies: list[_Reply] = []
        if result.tool_calls:
            path = "native"
            calls: list[dict[str, Any]] = []
            for index, call in enumerate(result.tool_calls):
                call_id = str(call.get("id") or "")
                if not call_id or any(c["id"] == call_id for c in calls):
                    call_id = f"call_{self.requests}_{index}"  # the answers must match the ids
                calls.append({**call, "id": call_id})
            message = {"role": "assistant", "content": result.content, "tool_calls": calls}
            parsed = parse_native_calls(calls, self._real)
            replies = [_Reply(self._to_real(a), c["id"]) for a, c in zip(parsed, calls)]
        else:
            message = {"role": "assistant", "content": result.content}
            found = parse_content_calls(result.content, self._real, self._keys)
            replies = [_Reply(self._to_real(action), None) for action in found or []]
            path = text_form(result.content) if found else "none"
        block = _Block(self._next_block(), [message])
        self._blocks.append(block)
        if self.tools is not None and path == "native":
            self.memory.native_replies += 1
        elif self.tools is not None and path in ("tagged", "json", "lines"):
            self.memory.text_replies_with_tools += 1
        checked = []
        seen: dict[str, int] = {}
        for reply in replies:
            action = reply.action
            if isinstance(action, FinishAction):
                task_id = action.task_id
                if task_id in finished:
                    action = ProtocolError(
                        f"task {self._name(task_id)} is already finished", FINISH
                    )
                finished.add(task_id)
            elif isinstance(action, WaitAction) and not observation.pending:
                action = ProtocolError(
                    "nothing is running, so no result is coming: make a call for an unfinished"
                    " task, or finish it",
                    WAIT,
                )
            elif isinstance(action, CallAction):
                action = self._running_copy(action) or self._bounded(action, seen, observation)
            elif isinstance(action, ProtocolError) and action.kind == ECHO:
                self._count("echoes")
                self._log(observation, "echoed_acknowledgement", action.message, result)
            checked.append(_Reply(action, reply.tool_call_id))
        if path != "native":
            self._show_as_written(block, checked)
        calls_made = sum(isinstance(r.action, CallAction) for r in checked)
        if self._report is not None:
            self._report["replies"][path] += 1
        self._log(
            observation,
            "model_reply",
            f"{len(replies)} call(s) read, {calls_made} to issue",
            path=path,
            finish_reason=result.finish_reason,
            cached=result.cached,
            **self._cost,
        )
        return checked

    def _show_as_written(self, block: _Block, replies: list[_Reply]) -> None:
        """Keep a text reply in the conversation as the calls it made, in the reply format:
        a small model writes its next reply like its last ones, so a reply that copied report
        lines, repeated a call or rambled, left as it was, teaches the slip (the 1.5B model,
        once it had answered in report lines, wrote whole user messages for the rest of the
        episode). What was refused is said in the next message."""
        block.said = [
            self._written(r.action) for r in replies if not isinstance(r.action, ProtocolError)
        ]
        block.messages[0]["content"] = reply_text(block.said, self.tools is None)

    def _forget_reply(self) -> None:
        """Leave an unusable text reply out of the conversation (the next message says what
        was wrong with it): shown as an empty call list, it taught the 1.5B model to answer
        with an empty call list twice more, which stopped the episode."""
        block = self._blocks[-1]
        if block.said is not None and block.messages and block.messages[0]["role"] == "assistant":
            block.messages.pop(0)
            block.said = None

    def _show_as_wait(self) -> None:
        """A text reply that counted as a wait is shown as one (what the model should have
        written), not as an empty reply."""
        block = self._blocks[-1]
        if block.said is not None:
            block.said = [written_call(WaitAction())]
            block.messages[0]["content"] = reply_text(block.said, self.tools is None)

    def _only_running_copies(self) -> bool:
        errors = [r.action for r in self._replies if isinstance(r.action, ProtocolError)]
        return bool(errors) and all(error.kind == RUNNING for error in errors)

    def _running_copy(self, action: CallAction) -> ProtocolError | None:
        """A call identical to one still running is not sent again: its result is on the way
        (the 1.5B model sent its last reply's calls again while they ran, and each copy
        changed the state a second time)."""
        for call in self._calls.values():
            same = (call.task_id, call.tool, call.arguments) == (
                action.task_id,
                action.tool,
                action.arguments,
            )
            if same and call.delivered is None and call.eta is not None:
                self._count("running_copies")
                label = self._label(call.call_id, call.task_id, call.tool, call.arguments)
                return ProtocolError(
                    f"{label} is still running (result at t={call.eta:.3f} s), so the same call"
                    " again was not sent.",
                    openai_name(action.tool),
                    RUNNING,
                )
        return None

    def _written(self, action: Action) -> WrittenCall:
        if isinstance(action, CallAction | FinishAction):
            return written_call(action, self._name(action.task_id))
        return written_call(action)

    def _bounded(
        self, action: CallAction, seen: dict[str, int], observation: Observation
    ) -> Action | ProtocolError:
        """The call, or a REPEAT error once this exact call was made often enough."""
        key = json.dumps([action.task_id, action.tool, action.arguments], sort_keys=True)
        earlier = self._issued.get(key, [])
        count = len(earlier) + seen.get(key, 0)
        if count < self.settings.max_identical_calls:
            seen[key] = seen.get(key, 0) + 1
            return action
        self._count("repeated_calls")
        ids = ", ".join(earlier) or "this reply"
        message = (
            f"stopped: {openai_name(action.tool)} {json.dumps(action.arguments)} for task"
            f" {self._name(action.task_id)} was already made {count} times ({ids}); making it again"
            " cannot help. Use the results you have, or finish the task."
        )
        self._log(
            observation,
            "repeated_call",
            message,
            task_id=action.task_id,
            tool=action.tool,
            arguments=action.arguments,
            count=count + 1,
        )
        return ProtocolError(message, openai_name(action.tool), REPEAT)

    # -- naming tasks as the model knows them --

    def _name(self, task_id: str) -> str:
        return self.aliases.get(task_id, task_id)

    def _label(self, call_id: str, task_id: str, tool: str, arguments: dict[str, Any]) -> str:
        return call_label(call_id, self._name(task_id), tool, arguments)

    def _to_real(self, action: Action | ProtocolError) -> Action | ProtocolError:
        """The action with the task's real id (an unknown name is left for the harness to
        refuse, so the score records the confusion)."""
        if isinstance(action, CallAction | FinishAction):
            real = self._real.get(action.task_id)
            if real is not None and real != action.task_id:
                return replace(action, task_id=real)
        return action

    def _task_board(self, observation: Observation) -> list[str]:
        """Every unfinished task with its question and its calls so far, last before the
        instruction: a small model loses track of a task it last read about in the system
        prompt."""
        open_tasks = [t for t in self.episode.instance.tasks if t.id not in observation.finished]
        if not open_tasks:
            return ["All tasks are finished."]
        lines = ["Unfinished tasks:"]
        for task in open_tasks:
            calls = [c for c in self._calls.values() if c.task_id == task.id]
            states = [
                f"{c.call_id} {openai_name(c.tool)} "
                + (
                    "running"
                    if c.delivered is None
                    else "failed"
                    if c.delivered.error
                    else "returned"
                )
                for c in calls
                if c.eta is not None or c.delivered is not None
            ]
            shown = states[-MAX_BOARD_CALLS:]
            if len(states) > len(shown):
                shown.insert(0, f"{len(states) - len(shown)} earlier")
            progress = "; ".join(shown) if shown else "no calls yet"
            lines.append(f"- {self._name(task.id)} {json.dumps(task.question)}: {progress}.")
        return lines

    def _next_block(self) -> int:
        return self._blocks[-1].number + 1 if self._blocks else 0

    # -- rendering what happened --

    def _outcome(self, reply: _Reply, ack: Ack | None) -> str:
        action = reply.action
        if isinstance(action, ProtocolError):
            return f"- not done: {action.message}"
        if isinstance(action, WaitAction):
            return "- waited."
        if isinstance(action, FinishAction):
            return f"- task {self._name(action.task_id)} finished."
        if ack is None:
            return f"- not sent: {openai_name(action.tool)} for task {self._name(action.task_id)}."
        label = self._label(ack.call_id, ack.task_id, ack.tool, action.arguments)
        if ack.status != "pending" or ack.error is not None:
            return f"- {label} refused: {ack.error}"
        return started_line(label, ack.eta)

    def _note_issued(self, reply: _Reply, ack: Ack | None) -> None:
        action = reply.action
        if not isinstance(action, CallAction) or ack is None:
            return
        eta = ack.eta if ack.status == "pending" else None
        self._calls[ack.call_id] = _Call(ack.call_id, ack.task_id, ack.tool, action.arguments, eta)
        key = json.dumps([action.task_id, action.tool, action.arguments], sort_keys=True)
        self._issued.setdefault(key, []).append(ack.call_id)
        self._keys.add(call_key(self._name(ack.task_id), openai_name(ack.tool), action.arguments))

    def _delivery_line(self, delivery: Delivery, observation: Observation, block: int) -> str:
        call = self._calls.get(delivery.call_id)
        if call is None:  # issued before this agent (never: one agent per episode)
            call = _Call(
                delivery.call_id, delivery.task_id, delivery.tool, delivery.arguments, None
            )
            self._calls[delivery.call_id] = call
        call.delivered = delivery
        call.shown_in = block
        limit = self.settings.max_result_chars
        label = self._label(delivery.call_id, delivery.task_id, delivery.tool, delivery.arguments)
        line = result_line(label, delivery.result, delivery.error, limit)
        line += usage_hint(delivery.tool, delivery.error)
        if limit is not None and delivery.error is None:
            length = len(json.dumps(delivery.result, ensure_ascii=False, default=str))
            if length > limit:
                message = f"{delivery.call_id}: {length} characters cut to {limit}"
                self._log(observation, "result_truncated", message)
        return line

    def _render(self, observation: Observation) -> None:
        """Append the feedback on the last reply and the news since it to the history."""
        acks = iter(observation.acks)
        first = not self._blocks
        block = self._blocks[-1] if self._blocks else _Block(0, [])
        if first:
            self._blocks.append(block)
        lines = [f"Clock: t={observation.now:.3f} s."]
        outcomes = []
        for reply in self._replies:
            ack = next(acks, None) if isinstance(reply.action, CallAction) else None
            self._note_issued(reply, ack)
            outcome = self._outcome(reply, ack)
            outcomes.append(outcome)
            if reply.tool_call_id is not None:
                block.messages.append(
                    {"role": "tool", "tool_call_id": reply.tool_call_id, "content": outcome[2:]}
                )
        if outcomes:
            lines += ["About your last reply:", *outcomes]
        if self._note is not None:
            lines.append(self._note)
            self._note = None
        if observation.deliveries:
            lines.append(f"New results ({len(observation.deliveries)}):")
            lines += [
                self._delivery_line(d, observation, block.number) for d in observation.deliveries
            ]
        elif not first:
            lines.append("No new results.")
        running = [
            call for call in self._calls.values() if call.delivered is None and call.eta is not None
        ]
        if running:
            lines.append("Still running (do not call these again):")
            lines += [
                running_line(self._label(c.call_id, c.task_id, c.tool, c.arguments), c.eta)
                for c in running
            ]
        lines += self._task_board(observation)
        lines.append(OPENING if first else NEXT_RUNNING if running else NEXT_IDLE)
        block.messages.append({"role": "user", "content": "\n".join(lines)})
        self._replies = []


def _capabilities(client: Any) -> dict[str, Any]:
    """The client's endpoint memory (a stand-in client without one knows nothing)."""
    capabilities = getattr(client, "capabilities", None)
    return capabilities if isinstance(capabilities, dict) else {}


def _tools_left_out(client: Any, settings: OpenAIAgentSettings) -> str | None:
    """Why an episode starts with the tools described in the prompt rather than offered as
    schemas, or None to offer them: the settings, or the endpoint memory (a refusal, or
    replies that never used them, learned by an earlier run; when and why is kept with it)."""
    if not settings.native_tools:
        return "native_tools is off"
    capabilities = _capabilities(client)
    known = capabilities.get("tools")
    if known == "refused":
        return f"endpoint memory: {capabilities.get('tools_why')}"
    if known == "unused" and settings.tools_unused_after is not None:
        return f"endpoint memory: {capabilities.get('tools_why')}"
    return None


def openai_agent_factory(
    client: LLMClient, settings: OpenAIAgentSettings | None = None
) -> Callable[[Episode], OpenAIAgent]:
    """For ``runner.run_many``: a fresh agent (and conversation) per episode; what one
    episode learns about the context window, the next ones start from."""
    chosen = settings or OpenAIAgentSettings()
    memory = ModelMemory(chosen.context_tokens, chosen.chars_per_token)

    def make(episode: Episode) -> OpenAIAgent:
        return OpenAIAgent(episode, client, chosen, memory)

    return make
