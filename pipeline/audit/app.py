"""The review app: ``create_app(run_dir)`` serves one run folder to reviewers on loopback.

Pages: ``/rejects`` (filters as query parameters, counts per code, paging), ``/sample/<id>``
(everything about one sample plus the decision form), ``/spot`` (a seeded sample of accepted
tasks). ``POST /decide`` takes the form and redirects back; ``/api/...`` serves the same data as
JSON. No page runs a script; requests must name a loopback host (against DNS rebinding) and a
decision must come from the app's own origin (against cross-site form posts).

A sample page belongs to a *queue*, the list it was opened from (the reject filters, or the spot
check's seed and size, carried in its query string): "next sample" is the next undecided id of that
queue. Its form carries ``seen``, the number of decisions the page showed; a decision posted after
someone else decided the same sample is refused (409) with theirs shown and the reviewer's own
choice and note kept in the form. Request bodies are capped before they are read in full.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.audit.export import CSP, environment, sample_context, sample_json
from pipeline.audit.store import (
    DECISIONS,
    FILTERS,
    Kind,
    RejectRow,
    RunCache,
    StaleDecision,
    append_review,
    latest_reviews,
    next_undecided,
    query_rejects,
    read_reviews,
    reject_queue,
)
from pipeline.models import Decision, Review

#: the largest body either decision endpoint reads (a note is at most 10,000 characters)
MAX_BODY_BYTES = 64 * 1024
MAX_FORM_BYTES = MAX_BODY_BYTES
MAX_REVIEWER = 100
MAX_NOTE = 10_000
MAX_SPOT = 500
DEFAULT_SPOT = 20
#: query keys a sample page keeps to know its queue
SPOT_KEYS = ("seed", "size")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def sample_href(sample_id: str) -> str:
    return "/sample/" + quote(sample_id, safe="")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_id: str
    decision: Decision
    reviewer: str
    note: str = ""
    #: how many decisions on the sample the reviewer saw; None skips the check
    seen: int | None = Field(default=None, ge=0)


def _row_json(row: RejectRow) -> dict[str, Any]:
    first = row.rejections[0]
    lineage = row.task.lineage if row.task else None
    return {
        "sample_id": row.sample_id,
        "codes": sorted(row.values("code")),
        "stage": first.stage.value,
        "category": row.task.category if row.task else None,
        "operator": lineage.operator if lineage else None,
        "model": lineage.model if lineage else None,
        "message": first.message,
        "decision": row.latest.decision.value if row.latest else None,
    }


async def _read_capped(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed the cap (never echoed)."""
    too_large = HTTPException(413, f"request body over {MAX_BODY_BYTES // 1024} KiB refused")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "bad Content-Length header")
        if int(declared) > MAX_BODY_BYTES:
            raise too_large
    body = bytearray()
    async for chunk in request.stream():  # a chunked body declares no length: count it
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _problems(error: ValidationError) -> str:
    """Which fields are wrong and why, without the submitted values."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)
    )[:500]


async def _form(request: Request) -> dict[str, str]:
    # urlencoded only: the page posts no files, and python-multipart is not a dependency
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise HTTPException(415, "expected an urlencoded form")
    body = await _read_capped(request)
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


async def _json_decision(request: Request) -> DecisionIn:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "expected a JSON body")
    body = await _read_capped(request)
    try:
        return DecisionIn.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(422, f"bad decision: {_problems(error)}") from None


def _queue_of(params: Mapping[str, str]) -> dict[str, str]:
    """The queue keys of a query (reject filters, or a spot check's seed and size)."""
    return {key: params[key] for key in (*FILTERS, *SPOT_KEYS) if params.get(key)}


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def create_app(run_dir: Path, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The app for one run folder; ``clock`` (UTC-aware) stamps decisions, tests inject it."""
    cache = RunCache(run_dir)
    cache.get()  # fail at start, not on the first request, when the folder is not a run
    templates = environment()
    now = clock or (lambda: datetime.now(UTC))
    # the interactive API docs load scripts from a CDN, which the CSP forbids: leave them out
    app = FastAPI(title="asynctool audit", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.headers.get("host", "")
        if not is_loopback(urlsplit(f"//{host}").hostname or ""):
            return PlainTextResponse("this app answers on loopback hosts only", 400)
        origin = request.headers.get("origin")
        posted = request.method not in ("GET", "HEAD")
        if posted and origin is not None and urlsplit(origin).netloc != host:
            return PlainTextResponse("cross-origin request refused", 403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # not "no-referrer": browsers would then send `Origin: null` and the check above refuses
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def render(name: str, **context: Any) -> HTMLResponse:
        page = templates.get_template(name).render(
            run=run_dir.name, standalone=False, href=sample_href, **context
        )
        return HTMLResponse(page)

    def filters_of(request: Request) -> dict[str, str]:
        return {key: request.query_params.get(key, "") for key in FILTERS}

    def record(entry: DecisionIn) -> Review:
        """Append the decision; :class:`StaleDecision` when ``entry.seen`` is out of date."""
        kind = cache.get().kind(entry.sample_id)
        if kind is None:
            raise HTTPException(404, f"no sample {entry.sample_id!r} in this run")
        if entry.decision not in DECISIONS[kind]:
            raise HTTPException(400, f"{entry.decision.value} is not a decision on {kind.value}")
        reviewer = entry.reviewer.strip()
        if not reviewer or len(reviewer) > MAX_REVIEWER:
            raise HTTPException(400, f"reviewer name must have 1 to {MAX_REVIEWER} characters")
        if len(entry.note) > MAX_NOTE:
            raise HTTPException(400, f"note longer than {MAX_NOTE} characters")
        review = Review(
            sample_id=entry.sample_id,
            decision=entry.decision,
            reviewer=reviewer,
            note=entry.note.strip(),
            at=now().astimezone(UTC),
        )
        append_review(run_dir, review, seen=entry.seen)
        return review

    def spot_ids(seed: int, size: int) -> tuple[list[str], int]:
        ids = sorted(cache.get().accepted)
        size = min(max(size, 1), MAX_SPOT, len(ids))
        return random.Random(seed).sample(ids, size), len(ids)

    def sample_link(sample_id: str, queue: Mapping[str, str], **extra: str) -> str:
        query = urlencode({**extra, **queue})
        return sample_href(sample_id) + (f"?{query}" if query else "")

    def next_in_queue(
        sample_id: str, kind: Kind, queue: Mapping[str, str], latest: Mapping[str, Review]
    ) -> str | None:
        if kind is Kind.ACCEPTED:
            seed = _int_or(queue.get("seed"), 0)
            ids, _ = spot_ids(seed, _int_or(queue.get("size"), DEFAULT_SPOT))
        else:
            ids = reject_queue(cache.get(), latest, queue)
        return next_undecided(ids, latest, sample_id)

    def sample_page(
        sample_id: str,
        queue: Mapping[str, str],
        saved: bool = False,
        conflict: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        reviews = read_reviews(run_dir)
        context = sample_context(cache.get(), reviews, sample_id)
        if context is None:
            raise HTTPException(404, f"no sample {sample_id!r} in this run")
        kind = Kind(context["kind"])
        next_id = next_in_queue(sample_id, kind, queue, latest_reviews(reviews))
        if kind is Kind.ACCEPTED:
            spot = {key: queue[key] for key in SPOT_KEYS if key in queue}
            list_link, list_name = "/spot?" + urlencode(spot), "spot check"
        else:
            filters = {key: queue[key] for key in FILTERS if key in queue}
            list_link, list_name = "/rejects?" + urlencode(filters), "rejected samples"
        response = render(
            "sample.html",
            s=context,
            saved=saved,
            conflict=conflict,
            queue=urlencode(queue),
            next_id=next_id,
            next_link=sample_link(next_id, queue) if next_id else "",
            list_link=list_link.rstrip("?"),
            list_name=list_name,
        )
        if conflict is not None:
            response.status_code = 409
        return response

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/rejects", status_code=303)

    @app.get("/rejects")
    def rejects(request: Request, page: int = 1) -> HTMLResponse:
        filters = filters_of(request)
        latest = latest_reviews(read_reviews(run_dir))
        result = query_rejects(cache.get(), latest, filters, page)

        def link(**changes: Any) -> str:
            params = {**filters, "page": result.page, **changes}
            kept = {k: str(v) for k, v in params.items() if str(v) and (k, str(v)) != ("page", "1")}
            return "/rejects?" + urlencode(kept)

        queue = _queue_of(filters)
        return render(
            "list.html",
            result=result,
            filters=filters,
            filter_keys=FILTERS,
            link=link,
            open_link=lambda sample_id: sample_link(sample_id, queue),
        )

    @app.get("/api/rejects")
    def api_rejects(request: Request, page: int = 1) -> dict[str, Any]:
        latest = latest_reviews(read_reviews(run_dir))
        result = query_rejects(cache.get(), latest, filters_of(request), page)
        return {
            "total": result.total,
            "page": result.page,
            "pages": result.pages,
            "counts": dict(result.counts.most_common()),
            "options": result.options,
            "items": [_row_json(row) for row in result.rows],
        }

    @app.get("/sample/{sample_id:path}")
    def sample(request: Request, sample_id: str, saved: int = 0) -> HTMLResponse:
        return sample_page(sample_id, _queue_of(request.query_params), saved=bool(saved))

    @app.get("/api/samples/{sample_id:path}")
    def api_sample(request: Request, sample_id: str) -> dict[str, Any]:
        reviews = read_reviews(run_dir)
        context = sample_context(cache.get(), reviews, sample_id)
        if context is None:
            raise HTTPException(404, f"no sample {sample_id!r} in this run")
        queue = _queue_of(request.query_params)
        latest = latest_reviews(reviews)
        following = next_in_queue(sample_id, Kind(context["kind"]), queue, latest)
        return {**sample_json(context), "next_undecided": following}

    @app.post("/decide", response_model=None)
    def decide(
        fields: Annotated[dict[str, str], Depends(_form)],
    ) -> RedirectResponse | HTMLResponse:
        queue = _queue_of(dict(parse_qsl(fields.pop("queue", ""))))
        if fields.get("seen") == "":
            del fields["seen"]
        try:
            entry = DecisionIn.model_validate(fields)
        except ValidationError as error:
            raise HTTPException(400, f"bad decision form: {_problems(error)}") from None
        try:
            review = record(entry)
        except StaleDecision as stale:
            # nothing is written; the page shows what changed and keeps the reviewer's input
            mine = {"decision": entry.decision, "reviewer": entry.reviewer, "note": entry.note}
            return sample_page(
                entry.sample_id, queue, conflict={"since": stale.since, "mine": mine}
            )
        location = sample_link(review.sample_id, queue, saved="1")
        return RedirectResponse(location, status_code=303)

    @app.post("/api/decisions", status_code=201, response_model=None)
    def api_decide(
        entry: Annotated[DecisionIn, Depends(_json_decision)],
    ) -> dict[str, Any] | JSONResponse:
        try:
            return record(entry).model_dump(mode="json")
        except StaleDecision as stale:
            detail = (
                f"not saved: {len(stale.since)} decision(s) on {entry.sample_id!r} were recorded "
                f"since the {entry.seen} you saw; read them and post again with seen="
                f"{len(stale.current)} to record yours after them"
            )
            since = [review.model_dump(mode="json") for review in stale.since]
            return JSONResponse({"detail": detail, "since": since}, status_code=409)

    @app.get("/api/reviews")
    def api_reviews() -> list[dict[str, Any]]:
        return [review.model_dump(mode="json") for review in read_reviews(run_dir)]

    @app.get("/spot")
    def spot(seed: int = 0, size: int = 20) -> HTMLResponse:
        ids, total = spot_ids(seed, size)
        accepted = cache.get().accepted
        latest = latest_reviews(read_reviews(run_dir))
        tasks = [accepted[task_id] for task_id in ids]
        queue = {"seed": str(seed), "size": str(size)}
        return render(
            "spot.html",
            tasks=tasks,
            total=total,
            seed=seed,
            size=size,
            latest=latest,
            open_link=lambda task_id: sample_link(task_id, queue),
        )

    @app.get("/api/spot")
    def api_spot(seed: int = 0, size: int = 20) -> dict[str, Any]:
        ids, total = spot_ids(seed, size)
        return {"seed": seed, "total": total, "ids": ids}

    return app


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app with uvicorn until interrupted; any non-loopback host is refused."""
    import uvicorn

    if not is_loopback(host):
        raise ValueError(f"refusing to serve on {host!r}: the audit app binds loopback only")
    app = create_app(run_dir)
    shown = f"[{host}]" if ":" in host else host
    print(f"auditing {run_dir} at http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
