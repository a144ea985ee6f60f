"""The review app: ``create_app(run_dir)`` serves one run folder to reviewers on loopback.

Pages: ``/rejects`` (filters as query parameters, counts per code, paging), ``/sample/<id>``
(everything about one sample plus the decision form), ``/spot`` (a seeded sample of accepted
tasks). ``POST /decide`` takes the form and redirects back; ``/api/...`` serves the same data as
JSON. No page runs a script; requests must name a loopback host (against DNS rebinding) and a
decision must come from the app's own origin (against cross-site form posts).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict

from pipeline.audit.export import CSP, environment, sample_context, sample_json
from pipeline.audit.store import (
    DECISIONS,
    FILTERS,
    RejectRow,
    RunCache,
    append_review,
    latest_reviews,
    query_rejects,
    read_reviews,
)
from pipeline.models import Decision, Review

MAX_FORM_BYTES = 64 * 1024
MAX_REVIEWER = 100
MAX_NOTE = 10_000
MAX_SPOT = 500


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


async def _form(request: Request) -> dict[str, str]:
    # urlencoded only: the page posts no files, and python-multipart is not a dependency
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise HTTPException(415, "expected an urlencoded form")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


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
        append_review(run_dir, review)
        return review

    def spot_ids(seed: int, size: int) -> tuple[list[str], int]:
        ids = sorted(cache.get().accepted)
        size = min(max(size, 1), MAX_SPOT, len(ids))
        return random.Random(seed).sample(ids, size), len(ids)

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

        return render("list.html", result=result, filters=filters, filter_keys=FILTERS, link=link)

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
    def sample(sample_id: str, saved: int = 0) -> HTMLResponse:
        context = sample_context(cache.get(), read_reviews(run_dir), sample_id)
        if context is None:
            raise HTTPException(404, f"no sample {sample_id!r} in this run")
        return render("sample.html", s=context, saved=bool(saved))

    @app.get("/api/samples/{sample_id:path}")
    def api_sample(sample_id: str) -> dict[str, Any]:
        context = sample_context(cache.get(), read_reviews(run_dir), sample_id)
        if context is None:
            raise HTTPException(404, f"no sample {sample_id!r} in this run")
        return sample_json(context)

    @app.post("/decide")
    def decide(fields: Annotated[dict[str, str], Depends(_form)]) -> RedirectResponse:
        try:
            entry = DecisionIn.model_validate(fields)
        except ValueError as error:
            raise HTTPException(400, f"bad decision form: {error}") from None
        review = record(entry)
        return RedirectResponse(f"{sample_href(review.sample_id)}?saved=1", status_code=303)

    @app.post("/api/decisions", status_code=201)
    def api_decide(entry: DecisionIn) -> dict[str, Any]:
        return record(entry).model_dump(mode="json")

    @app.get("/api/reviews")
    def api_reviews() -> list[dict[str, Any]]:
        return [review.model_dump(mode="json") for review in read_reviews(run_dir)]

    @app.get("/spot")
    def spot(seed: int = 0, size: int = 20) -> HTMLResponse:
        ids, total = spot_ids(seed, size)
        accepted = cache.get().accepted
        latest = latest_reviews(read_reviews(run_dir))
        tasks = [accepted[task_id] for task_id in ids]
        return render("spot.html", tasks=tasks, total=total, seed=seed, size=size, latest=latest)

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
