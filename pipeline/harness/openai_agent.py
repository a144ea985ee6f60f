"""An agent backed by any OpenAI-compatible chat endpoint, speaking ``harness.protocol``.

Each step renders what happened since the model's last reply — one ``tool`` message per call it
made (the acknowledgement: call id and status, or why it was refused), then a user message with
the clock, the results delivered (by call id) and what is still open — asks the model, and turns
the reply into actions: native ``tool_calls`` first, else calls written as JSON in the text.
Results are shown whole, whatever their JSON shape (a bare list such as ``get_watchlist``'s in
BFCL's long-context mode included); ``max_result_chars`` is an explicit, opt-in cap.

Nothing the model says can crash an episode. A reply with nothing to act on is reported back:
while calls are pending it counts as a wait; with nothing pending it is answered at once (an
empty step would end the episode). After ``max_invalid_replies`` such replies in a row, a failed
request, or ``max_turns`` model requests, the agent stops: it returns no actions, so the episode
ends once the pending calls are delivered. A server that refuses the ``tools`` parameter (HTTP
400/422 before any native call) is asked again without it, the tools spelled out in the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.harness.protocol import (
    FINISH,
    WAIT,
    ProtocolError,
    agent_tools,
    openai_name,
    parse_content_calls,
    parse_native_calls,
    system_prompt,
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


@dataclass(frozen=True)
class _Reply:
    """One call of the model's last reply and what became of it."""

    action: Action | ProtocolError
    tool_call_id: str | None  # native calls are answered by id; JSON-in-text calls are not


def _result_fields(value: Any, limit: int | None) -> tuple[dict[str, Any], int | None]:
    """The delivery's result fields: the value as it is (any JSON: an object, a bare list, a
    string), or, over ``limit``, the start of its JSON and a field saying it was cut. Also the
    full length when cut (for the log)."""
    if limit is None:
        return {"result": value}, None
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return {"result": value}, None
    note = (
        f"the result is {len(text)} characters of JSON; only the first {limit} are shown"
        " (this agent's max_result_chars)"
    )
    return {"result": text[:limit], "result_truncated": note}, len(text)


def _line(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)


class OpenAIAgent:
    """One episode's conversation with the model (build one per episode)."""

    def __init__(
        self, episode: Episode, client: LLMClient, settings: OpenAIAgentSettings | None = None
    ) -> None:
        self.settings = settings or OpenAIAgentSettings()
        self.name = self.settings.name or f"openai:{client.model}"
        self.client = client
        self.episode = episode
        instance = episode.instance
        self.task_ids = list(episode.task_ids)
        self.tools = agent_tools(instance) if self.settings.native_tools else None
        prompt = system_prompt(instance, list_signatures=not self.settings.native_tools)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": prompt}]
        self.requests = 0
        self.invalid_streak = 0
        self.stopped: str | None = None  # why the agent gave up
        self._replies: list[_Reply] = []  # the last reply's calls, awaiting feedback
        self._note: str | None = None  # said once in the next user message

    # -- one step --

    async def __call__(self, observation: Observation) -> list[Action]:
        if self.stopped is not None:
            return []
        self._render(observation)
        while True:
            limit = self.settings.max_turns
            if limit is not None and self.requests >= limit:
                return self._stop(observation, f"reached the limit of {limit} model requests")
            result = await self.client.chat(
                stage=self.settings.stage,
                messages=self.messages,
                tools=self.tools,
                tool_choice="auto" if self.tools else None,
            )
            self.requests += 1
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
            self.invalid_streak += 1
            problem = self._problem(observation)
            self._log(observation, "invalid_reply", problem, result)
            if self.invalid_streak >= self.settings.max_invalid_replies:
                return self._stop(observation, f"{self.invalid_streak} unusable replies in a row")
            if observation.pending:
                self._note = f"{problem} It counted as a wait."  # said with the next delivery
                return [WaitAction()]
            self._note = problem
            # nothing pending: an empty step would end the episode, so answer it right away
            self._render(Observation(observation.now, [], [], 0, observation.finished))

    def _tools_refused(self, result: ChatResult) -> bool:
        """A server that rejects the tools parameter (vLLM without auto tool choice, ...):
        go on without it, the tools described in the system prompt, if nothing relies on
        native calls yet."""
        if self.tools is None or result.status not in REFUSED_STATUS:
            return False
        if any("tool_calls" in message for message in self.messages):
            return False
        self.tools = None
        prompt = system_prompt(self.episode.instance, list_signatures=True)
        self.messages[0] = {"role": "system", "content": prompt}
        return True

    def _problem(self, observation: Observation) -> str:
        if not self._replies:
            return "Your reply contained no function call, so nothing was done."
        return "None of the calls in your reply could be carried out (see the errors)."

    def _stop(self, observation: Observation, reason: str) -> list[Action]:
        self.stopped = reason
        self._log(observation, "agent_stopped", reason)
        return []

    def _log(
        self, observation: Observation, kind: str, message: str, result: ChatResult | None = None
    ) -> None:
        """Into the episode's event log, beside the harness's own events."""
        event: dict[str, Any] = {
            "event": kind,
            "sim_time": round(observation.now, 6),
            "agent": self.name,
            "message": message,
        }
        if result is not None:
            event["raw"] = (result.raw or "")[:MAX_LOGGED_RAW]
        self.episode.trace.events.append(event)

    # -- reading a reply --

    def _read(self, result: ChatResult, observation: Observation) -> list[_Reply]:
        """The reply as calls (appending it to the history). Finishing a finished task and
        waiting with nothing pending are errors here: the harness would ignore the one silently
        and end the episode on the other."""
        finished = set(observation.finished)
        replies: list[_Reply] = []
        if result.tool_calls:
            calls: list[dict[str, Any]] = []
            for index, call in enumerate(result.tool_calls):
                call_id = str(call.get("id") or "")
                if not call_id or any(c["id"] == call_id for c in calls):
                    call_id = f"call_{self.requests}_{index}"  # the answers must match the ids
                calls.append({**call, "id": call_id})
            self.messages.append(
                {"role": "assistant", "content": result.content, "tool_calls": calls}
            )
            parsed = parse_native_calls(calls, self.task_ids)
            replies = [_Reply(a, c["id"]) for a, c in zip(parsed, calls)]
        else:
            self.messages.append({"role": "assistant", "content": result.content})
            found = parse_content_calls(result.content, self.task_ids)
            replies = [_Reply(action, None) for action in found or []]
        checked = []
        for reply in replies:
            action = reply.action
            if isinstance(action, FinishAction):
                task_id = action.task_id
                if task_id in finished:
                    action = ProtocolError(f"task {task_id} is already finished", FINISH)
                finished.add(task_id)
            elif isinstance(action, WaitAction) and not observation.pending:
                action = ProtocolError("nothing is pending, so there is nothing to wait for", WAIT)
            checked.append(_Reply(action, reply.tool_call_id))
        return checked

    # -- rendering what happened --

    def _outcome(self, reply: _Reply, ack: Ack | None, observation: Observation) -> dict[str, Any]:
        action = reply.action
        if isinstance(action, ProtocolError):
            return {"status": "error", "error": action.message}
        if isinstance(action, WaitAction):
            return {"status": "waited", "clock": round(observation.now, 3)}
        if isinstance(action, FinishAction):
            return {"status": "finished", "task_id": action.task_id}
        if ack is None:
            return {"status": "not sent", "task_id": action.task_id}
        outcome: dict[str, Any] = {
            "status": ack.status,
            "call_id": ack.call_id,
            "task_id": ack.task_id,
            "tool": openai_name(ack.tool),
        }
        if ack.error is not None:
            outcome["error"] = ack.error
        elif ack.eta is not None:
            outcome["result_expected_at"] = round(ack.eta, 3)
        return outcome

    def _delivery(self, delivery: Delivery, observation: Observation) -> str:
        payload: dict[str, Any] = {
            "call_id": delivery.call_id,
            "task_id": delivery.task_id,
            "tool": openai_name(delivery.tool),
            "arguments": delivery.arguments,
        }
        limit = self.settings.max_result_chars
        if delivery.error is not None:
            payload["error"] = delivery.error
        else:
            fields, full_length = _result_fields(delivery.result, limit)
            payload.update(fields)
            if full_length is not None:
                message = f"{delivery.call_id}: {full_length} characters cut to {limit}"
                self._log(observation, "result_truncated", message)
        return _line(payload)

    def _render(self, observation: Observation) -> None:
        """Append the feedback on the last reply and the news since it to the history."""
        acks = iter(observation.acks)
        outcomes = []
        for reply in self._replies:
            ack = next(acks, None) if isinstance(reply.action, CallAction) else None
            outcomes.append((reply, self._outcome(reply, ack, observation)))
        lines = [f"Clock: t={observation.now:.3f} s."]
        if not self._replies and len(self.messages) == 1:
            lines.append("No calls made yet. Begin.")
        for reply, outcome in outcomes:
            if reply.tool_call_id is not None:
                self.messages.append(
                    {"role": "tool", "tool_call_id": reply.tool_call_id, "content": _line(outcome)}
                )
        text_outcomes = [_line(o) for r, o in outcomes if r.tool_call_id is None]
        if text_outcomes:
            lines += ["Your calls:", *text_outcomes]
        if self._note is not None:
            lines.append(self._note)
            self._note = None
        if observation.deliveries:
            lines.append(f"Results delivered ({len(observation.deliveries)}):")
            lines += [self._delivery(d, observation) for d in observation.deliveries]
        elif len(self.messages) > 1:
            lines.append("No new results.")
        open_tasks = [t for t in self.task_ids if t not in observation.finished]
        lines.append(
            f"Calls pending: {observation.pending}. Unfinished tasks: {', '.join(open_tasks)}."
        )
        self.messages.append({"role": "user", "content": "\n".join(lines)})
        self._replies = []


def openai_agent_factory(
    client: LLMClient, settings: OpenAIAgentSettings | None = None
) -> Callable[[Episode], OpenAIAgent]:
    """For ``runner.run_many``: a fresh agent (and conversation) per episode."""

    def make(episode: Episode) -> OpenAIAgent:
        return OpenAIAgent(episode, client, settings)

    return make
