"""LLM evolution against a real endpoint (issue 17): what one round of deepen, broaden and
paraphrase with the judge adds, and what each genuinely new task costs.

Picks one seed per environment file with a fixed number (12 seeds from ``seeds/``), writes them
to ``<output>/runs/<run id>.seeds.jsonl``, and runs ``asynctool evolve`` on that file through its
CLI (``--rounds 1 --judge --no-repair``) against the endpoint, through a loopback proxy that
logs each request (which answer model it asked for, start, end, tokens). Then, per operator:
candidates, accepted, accepted tasks whose calls (tool and arguments, in order) differ from the
parent's, and the seconds, requests and tokens per such task (a paraphrase keeps its parent's
calls by design, so its accepted tasks are counted as "paraphrases accepted" instead). The
judge's requests are charged to the operator whose task they judged.

Seconds: the endpoint answers one request at a time, so each request is charged the time from
the later of its start and the previous answer's end to its own end; these add up to the time
the run had a request in flight (other users of a shared server inflate them).

The table is printed and written, with the request log, to ``<output>/runs/<run id>.bench.json``;
the run folder is kept. ``--analyse`` recomputes the table from an existing run and its log.
``--asynctool``/``--cwd`` run another checkout's CLI (a "before" measurement from a worktree).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
OPERATORS = ("deepen", "broaden", "paraphrase")
#: the pydantic answer model each request names in its schema -> the stage that sent it
ANSWER_STAGE = {
    "DeepenAnswer": "deepen",
    "EvolvedTask": "broaden",  # the only operator of this run that asks for a whole task
    "ParaphraseAnswer": "paraphrase",
    "Judgement": "judge",  # the one-verdict judge
    "JudgeAnswer": "judge",  # the judge with a question per rubric label
    "RepairAnswer": "repair",
}


# --- seeds ------------------------------------------------------------------------------------


def pick_seeds(folder: Path, number: int) -> list[str]:
    """One seed line per environment file, drawn with ``number``: the same 12 every run."""
    picked = []
    for path in sorted(folder.glob("*.jsonl")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if lines:
            picked.append(random.Random(f"{number}:{path.stem}").choice(lines))
    return picked


# --- the logging proxy ------------------------------------------------------------------------


@dataclass
class Exchange:
    stage: str
    started: float  # seconds since the proxy started
    ended: float
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    #: what the request's user messages said (for a judge request, the task it judged)
    prompt_text: str = ""
    error: str = ""  # what a failed request got back, cut short


#: the closing instruction of each operator's prompt, for answer models two operators share
#: (``GuidedAnswer``: deepen or broaden choosing a checked step)
JOB_STAGE = {
    "Your job: make this task deeper": "deepen",
    "Your job: write a different task": "broaden",
}


def _stage_of(body: dict[str, Any]) -> str:
    user = " ".join(str(m.get("content", "")) for m in body.get("messages", [])[1:])
    for marker, stage in JOB_STAGE.items():
        if marker in user:
            return stage
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
    title = schema.get("title") if isinstance(schema, dict) else None
    if isinstance(title, str) and title in ANSWER_STAGE:
        return ANSWER_STAGE[title]
    text = json.dumps(body.get("messages", []))  # plain-text mode: the schema is in a message
    for name, stage in ANSWER_STAGE.items():
        if f'\\"title\\":\\"{name}\\"' in text or f'"title":"{name}"' in text:
            return stage
    return "other"


class Recorder:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")  # e.g. /v1
        self.origin = time.monotonic()
        self.started_at = time.time()  # the wall clock at ``origin``, for shard file times
        self.lock = threading.Lock()
        self.exchanges: list[Exchange] = []

    def forward(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes, str]:
        started = time.monotonic() - self.origin
        connection = http.client.HTTPConnection(self.host, self.port, timeout=3600)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            reply = connection.getresponse()
            payload = reply.read()
            status, kind = reply.status, reply.getheader("Content-Type", "application/json")
        except OSError as error:  # logged too: the client sees a 502 and retries
            status, payload, kind = 502, f"proxy: {error!r}".encode(), "text/plain"
        finally:
            connection.close()
        if method == "POST" and path.endswith("/chat/completions") and body is not None:
            self._note(body, status, payload, started)
        return status, payload, kind

    def _note(self, body: bytes, status: int, payload: bytes, started: float) -> None:
        request = json.loads(body)
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        exchange = Exchange(
            stage=_stage_of(request),
            started=round(started, 3),
            ended=round(time.monotonic() - self.origin, 3),
            status=status,
            prompt_text="\n".join(
                str(m.get("content", "")) for m in messages if m.get("role") == "user"
            ),
        )
        if status >= 400:
            exchange.error = payload[:300].decode("utf-8", "replace")
        try:
            answer = json.loads(payload)
            usage = answer.get("usage") or {}
            exchange.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            exchange.completion_tokens = int(usage.get("completion_tokens") or 0)
            exchange.finish_reason = (answer.get("choices") or [{}])[0].get("finish_reason")
        except (ValueError, AttributeError, IndexError, TypeError):
            pass  # an error page: the status says enough
        with self.lock:
            self.exchanges.append(exchange)


def serve_proxy(recorder: Recorder) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _relay(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if method == "POST" else None
            status, payload, kind = recorder.forward(method, self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._relay("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._relay("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- the analysis -----------------------------------------------------------------------------


def _records(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)


def _call_list(task: dict[str, Any]) -> list[tuple[str, str]]:
    """Tools and arguments in order; step ids and inferred dependencies do not count."""
    return [
        (call["tool"], json.dumps(call.get("arguments", {}), sort_keys=True))
        for call in task["calls"]
    ]


def service_seconds(exchanges: list[Exchange]) -> list[float]:
    """Each request's share of the time some request was in flight (one answer at a time)."""
    order = sorted(range(len(exchanges)), key=lambda i: exchanges[i].ended)
    shares = [0.0] * len(exchanges)
    previous_end = 0.0
    for index in order:
        exchange = exchanges[index]
        shares[index] = max(0.0, exchange.ended - max(exchange.started, previous_end))
        previous_end = max(previous_end, exchange.ended)
    return shares


@dataclass
class OperatorRow:
    operator: str
    candidates: int = 0
    accepted: int = 0
    new_calls: int = 0  # accepted, calls differ from the parent's
    judge_rejected: int = 0
    rejected_codes: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    per_task: dict[str, float | None] = field(default_factory=dict)
    #: accepted tasks the checks of this checkout would reject (a fix made after the run)
    rejected_now: dict[str, int] = field(default_factory=dict)


def recheck(
    made: list[dict[str, Any]], parents: dict[str, dict[str, Any]]
) -> list[tuple[str, str | None]]:
    """Each accepted task's operator and the code this checkout's operator checks (a copied
    worked example, what the operator must add) give it now, in the run's order; None: kept.
    Validation is not rerun: it has no LLM in it, and the run's tasks passed it."""
    from pipeline.evolve.novelty import NoveltyCheck, copied_phrase
    from pipeline.evolve.prompts import render
    from pipeline.models import Rejection, Task

    tasks = [Task.model_validate(t) for t in made]
    known = {p["id"]: Task.model_validate(p) for p in parents.values()}
    check = NoveltyCheck(list(known.values()))
    found: list[tuple[str, str | None]] = []
    for task in tasks:
        operator, parent = task.lineage.operator, known[task.lineage.parents[0]]
        if copied_phrase(render(operator, parent).shown, parent, task.question):
            found.append((operator, "question.template_artefact"))
            continue
        verdict = check.admit(operator, parent.id, task)
        found.append((operator, verdict.code.value if isinstance(verdict, Rejection) else None))
    return found


@dataclass
class RunFiles:
    """What the analysis reads of a run: its manifest's counts and its task files."""

    operators: dict[str, dict[str, int]]
    evolved: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    rejected_tasks: list[dict[str, Any]]
    manifest: dict[str, Any]
    #: None for a finished run; else seconds after the run's start when its last shard ended
    partial_until: float | None = None


def run_files(run: Path, started_at: float) -> RunFiles:
    """The merged files of a finished run, else those of the round's finished shards (a run
    stopped early: only the requests made before its last finished shard ended then count)."""
    if (run / "manifest.json").exists():
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        manifest = manifest.get("evolve", manifest)  # the run manifest keeps a part per stage
        return RunFiles(
            manifest.get("operators", {}),
            list(_records(run / "evolved.jsonl")),
            list(_records(run / "evolve_rejected.jsonl")),
            list(_records(run / "rejected_tasks.jsonl")),
            manifest,
        )
    shards = sorted((run / "evolve" / "round_01" / "shards").glob("*.stats.json"))
    files = RunFiles({}, [], [], [], {}, partial_until=0.0)
    for stats_file in shards:
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        for name, counts in stats["operators"].items():
            total = files.operators.setdefault(name, {})
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
        stem = str(stats_file).removesuffix(".stats.json")
        files.evolved += _records(Path(stem + ".accepted.jsonl"))
        files.rejected += _records(Path(stem + ".rejected.jsonl"))
        files.rejected_tasks += _records(Path(stem + ".rejected_tasks.jsonl"))
        ended = stats_file.stat().st_mtime - started_at
        files.partial_until = max(files.partial_until or 0.0, ended)
    return files


def analyse(
    run: Path, seeds_file: Path, exchanges: list[Exchange], started_at: float
) -> dict[str, Any]:
    files = run_files(run, started_at)
    if files.partial_until is not None:
        exchanges = [e for e in exchanges if e.ended <= files.partial_until]
    parents = {task["id"]: task for task in _records(seeds_file)}
    parents.update({task["id"]: task for task in files.evolved})
    rows = {name: OperatorRow(name) for name in OPERATORS}
    for name, stats in files.operators.items():
        if name in rows:
            rows[name].candidates = stats.get("generated", 0)
            rows[name].accepted = stats.get("accepted", 0)
    # which operator made each task the judge may have seen: accepted, or rejected by it
    judged_text: list[tuple[str, str]] = []
    made = [t for t in files.evolved if t["lineage"]["operator"] in rows]
    for task in made:
        parent = parents.get(task["lineage"]["parents"][0])
        if parent is not None and _call_list(parent) != _call_list(task):
            rows[task["lineage"]["operator"]].new_calls += 1
        judged_text.append((task["question"], task["lineage"]["operator"]))
    for made_by, code in recheck(made, parents):
        if made_by in rows and code is not None:
            codes = rows[made_by].rejected_now
            codes[code] = codes.get(code, 0) + 1
    maker = {task["id"]: task["lineage"]["operator"] for task in files.rejected_tasks}
    for rejection in files.rejected:  # filed under the task's id, or "<parent id>:<operator>"
        sample = rejection["sample_id"]
        made_by = maker.get(sample) or sample.rpartition(":")[2]
        if made_by in rows:
            codes = rows[made_by].rejected_codes
            codes[rejection["code"]] = codes.get(rejection["code"], 0) + 1
    rejected_ids = {r["sample_id"] for r in files.rejected if r["code"].startswith("judge.")}
    for task in files.rejected_tasks:
        made_by = task["lineage"]["operator"]
        if task["id"] in rejected_ids and made_by in rows:
            rows[made_by].judge_rejected += 1
            judged_text.append((task["question"], made_by))
    shares = service_seconds(exchanges)
    unattributed = 0
    for exchange, share in zip(exchanges, shares):
        operator: str | None = exchange.stage if exchange.stage in rows else None
        # charged to the operator whose task it judged ("other": an answer model not listed)
        if exchange.stage in ("judge", "other"):
            owners = [(len(q), op) for q, op in judged_text if q in exchange.prompt_text]
            operator = max(owners)[1] if owners else None  # the longest question that fits
        if operator is None:
            unattributed += 1
            continue
        row = rows[operator]
        row.requests += 1
        row.prompt_tokens += exchange.prompt_tokens
        row.completion_tokens += exchange.completion_tokens
        row.seconds += share
    for row in rows.values():
        count = row.accepted if row.operator == "paraphrase" else row.new_calls
        row.seconds = round(row.seconds, 1)
        row.per_task = {
            "seconds": round(row.seconds / count, 1) if count else None,
            "requests": round(row.requests / count, 2) if count else None,
            "tokens": round((row.prompt_tokens + row.completion_tokens) / count) if count else None,
        }
    in_flight = round(sum(shares), 1)
    return {
        "run_id": run.name,
        "rows": [asdict(row) for row in rows.values()],
        "llm_made_tasks": len(made),
        "requests": len(exchanges),
        "failed_requests": sum(e.status >= 400 for e in exchanges),
        "cut_at_cap": sum(e.finish_reason == "length" for e in exchanges),
        "unattributed_requests": unattributed,
        "seconds_in_flight": in_flight,
        "partial_until": files.partial_until,
        "rejected_by_code": dict(Counter(r["code"] for r in files.rejected).most_common()),
        "manifest_seconds": files.manifest.get("seconds"),
        "token_usage": files.manifest.get("token_usage"),
        "llm_endpoint": files.manifest.get("llm_endpoint"),
        "judge": files.manifest.get("judge"),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| operator | candidates | accepted | calls differ | judge rejected | rejected now |"
        " requests | tokens (prompt+completion) | seconds | s / new | req / new | tok / new |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        per = row["per_task"]
        differ = str(row["new_calls"])
        if row["operator"] == "paraphrase":
            differ += f" ({row['accepted']} paraphrases accepted)"
        cells = [
            row["operator"],
            row["candidates"],
            row["accepted"],
            differ,
            row["judge_rejected"],
            ", ".join(f"{n} {code}" for code, n in row.get("rejected_now", {}).items()) or "0",
            row["requests"],
            f"{row['prompt_tokens']}+{row['completion_tokens']}",
            row["seconds"],
            per["seconds"] if per["seconds"] is not None else "-",
            per["requests"] if per["requests"] is not None else "-",
            per["tokens"] if per["tokens"] is not None else "-",
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


# --- running ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": model,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8181/v1")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--run-id", default="llm17")
    parser.add_argument("--output", type=Path, default=REPO / "output")
    parser.add_argument("--number", type=int, default=17, help="draws the seeds")
    parser.add_argument("--seeds-dir", type=Path, default=REPO / "seeds")
    parser.add_argument("--asynctool", default=str(REPO / ".venv" / "bin" / "asynctool"))
    parser.add_argument("--cwd", type=Path, default=REPO, help="checkout the CLI runs in")
    parser.add_argument("--timeout", type=float, help="LLM timeout written to the run's TOML")
    parser.add_argument("--concurrency", type=int, help="requests in flight, to the run's TOML")
    parser.add_argument("--extra", default="", help="more evolve flags, space-separated")
    parser.add_argument("--analyse", action="store_true", help="only recompute the table")
    args = parser.parse_args()

    output = args.output.resolve()
    run = output / "runs" / args.run_id
    seeds_file = output / "runs" / f"{args.run_id}.seeds.jsonl"
    report = output / "runs" / f"{args.run_id}.bench.json"
    result: dict[str, Any]
    if args.analyse:
        if not report.exists():
            print(f"error: {report} does not exist: run the bench first", file=sys.stderr)
            return 2
        saved = json.loads(report.read_text(encoding="utf-8"))
        exchanges = [Exchange(**item) for item in saved["exchanges"]]
        # the run's TOML is written just before the proxy starts (an older report has no time)
        config = output / "runs" / f"{args.run_id}.llm.toml"
        started_at = saved.get("started_at") or config.stat().st_mtime
        result = {**saved, **analyse(run, seeds_file, exchanges, started_at)}
    else:
        if run.exists():
            print(f"error: {run} exists; pick another --run-id or use --analyse", file=sys.stderr)
            return 2
        seeds_file.parent.mkdir(parents=True, exist_ok=True)
        seeds_file.write_text("\n".join(pick_seeds(args.seeds_dir, args.number)) + "\n")
        config = output / "runs" / f"{args.run_id}.llm.toml"
        # a cache of its own: nothing answered from another run, the endpoint learned afresh
        settings = [f'cache_path = "{output / "runs" / f"{args.run_id}.llm.sqlite"}"']
        # an older checkout has no local defaults: give them explicitly to compare like with like
        settings += [f"timeout = {args.timeout}"] if args.timeout else []
        settings += [f"concurrency = {args.concurrency}"] if args.concurrency else []
        config.write_text("\n".join(settings) + "\n", encoding="utf-8")
        recorder = Recorder(args.base_url)
        proxy = serve_proxy(recorder)
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}{recorder.prefix}"
        command = [
            args.asynctool, "evolve", "--seeds", str(seeds_file), "--rounds", "1",
            "--operators", ",".join(OPERATORS), "--judge", "--no-repair", "--inline",
            "--run-id", args.run_id, "--output", str(output),
            "--llm-base-url", proxy_url, "--llm-model", args.model, "--llm-config", str(config),
            *args.extra.split(),
        ]  # fmt: skip
        before = machine()
        print("machine:", json.dumps(before), flush=True)
        print("running:", " ".join(command), flush=True)
        started = time.monotonic()
        # the checkout's own code, not the one this virtualenv installed (a "before" worktree)
        env = {**os.environ, "PYTHONPATH": str(args.cwd.resolve())}
        finished = subprocess.run(command, cwd=args.cwd, env=env, check=False)
        wall = round(time.monotonic() - started, 1)
        proxy.shutdown()
        exchanges = list(recorder.exchanges)
        result = {
            "machine": before,
            "load_average_after": os.getloadavg(),
            "command": command,
            "exit_code": finished.returncode,
            "wall_seconds": wall,
            "endpoint": {"base_url": args.base_url, "model": args.model},
            "seeds_file": str(seeds_file),
            "started_at": recorder.started_at,
            "exchanges": [asdict(e) for e in exchanges],
        }
        if finished.returncode != 0 or not (run / "manifest.json").exists():
            report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(f"error: evolve exited with {finished.returncode}; log in {report}")
            return 1
        result.update(analyse(run, seeds_file, exchanges, recorder.started_at))
    report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    if result.get("partial_until") is not None:
        print(f"partial: the shards finished {result['partial_until']:.0f} s into the run")
    print(
        f"run {result['run_id']}: {result['llm_made_tasks']} LLM-made tasks;"
        f" {result['requests']} requests ({result['failed_requests']} failed,"
        f" {result['cut_at_cap']} cut at the cap); wall {result['wall_seconds']} s,"
        f" a request in flight {result['seconds_in_flight']} s; written to {report}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
