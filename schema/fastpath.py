"""Known queries over HTTP answered without Strawberry's per-request pipeline.

A POST of a JSON body whose document is already cached, validated without errors and compiled
(schema/documents.py, schema/compiled.py) needs none of what Strawberry's view and operation
pipeline do per request: parsing and validation are cached, the extensions' per-request checks
are two (the rate limit and the list caps, schema/limits.py), and the plan runs the resolvers.
`answer()` does exactly those checks with the same per-document plans the extensions use, runs
the plan and renders the answer as the view would (same body, status and headers).

It answers only when it can answer exactly as the general path would; otherwise it returns
None and the request goes through Strawberry as before: the first request for a document (it
is parsed, validated and compiled there), anything over a limit (the general path words the
error; a rate-limit verdict already taken is handed over, `DECIDED`, not counted twice), a
variable that is not exactly of its declared type, a plan that gives up (`PLAN_FAILED`: the
general path then runs graphql-core directly), batches, GET, uploads, streaming transports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from resolvers.ratelimit import PER_IP, Decision, RateClass, caller_key
from schema.compiled import Plan, Unsupported, coerce_variables, compile_plan, run
from schema.documents import PersistedQueryError, persisted_query_text

if TYPE_CHECKING:
    from config import Settings
    from schema.app import CowatchGraphQL

#: scope key: the rate-limit decisions this request already took (schema/limits.py reuses them)
DECIDED = "cowatch.rate_decided"
#: scope key: the compiled plan gave up on this request; the general path skips it
PLAN_FAILED = "cowatch.plan_failed"
_KEYS = frozenset({"query", "variables", "operationName", "extensions"})
_STREAMING = ("multipart/mixed", "text/event-stream")


def _json_request(request: Request) -> bool:
    headers = request.headers
    kind = headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        return False
    accept = headers.get("accept", "")
    return not any(streaming in accept for streaming in _STREAMING)


def _rate_classes(document: Any, name: str | None) -> list[RateClass]:
    from schema.limits import rate_classes

    classes: list[RateClass] = document.plan(
        ("rate_classes", name), lambda d: rate_classes(d.ast, name)
    )
    return classes


def _limit_arguments(document: Any) -> list[tuple[str, int | str]]:
    from schema.limits import limit_arguments

    found: list[tuple[str, int | str]] = document.plan(
        "limit_arguments", lambda d: limit_arguments(d.ast)
    )
    return found


def _over_cap(
    arguments: list[tuple[str, int | str]], variables: Mapping[str, Any], cap: int
) -> bool:
    for _name, given in arguments:
        value = variables.get(given) if isinstance(given, str) else given
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            return True
    return False


async def answer(view: CowatchGraphQL, request: Request, settings: Settings) -> Response | None:
    """The response for a known compiled query, or None: the general path answers it."""
    if not settings.graphql_compiled_plans or not _json_request(request):
        return None
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not data.keys() <= _KEYS:
        return None
    query, variables = data.get("query"), data.get("variables")
    name, extensions = data.get("operationName"), data.get("extensions")
    if not (
        isinstance(query, str | None)
        and isinstance(variables, dict | None)
        and isinstance(name, str | None)
        and isinstance(extensions, dict | None)
    ):
        return None
    schema = view.schema
    cache = schema.documents  # type: ignore[attr-defined]
    try:
        text = persisted_query_text(cache, query, extensions)
    except PersistedQueryError:
        return None
    if text is None or len(text) > settings.graphql_max_bytes // 4:
        return None  # the size check (and its error) is the general path's
    document = cache.lookup(text)
    if document is None or document.validation != []:
        return None
    plan: Plan | None = document.plan(
        ("compiled", name), lambda d: compile_plan(schema, d.ast, name)
    )
    if plan is None:
        return None
    variables = variables or {}
    try:
        coerced = coerce_variables(plan, variables)
    except Unsupported:
        return None
    if _over_cap(_limit_arguments(document), variables, settings.graphql_max_list_limit):
        return None

    sub_response = await view.get_sub_response(request)
    context = await view.get_context(request, sub_response)
    decisions = await _count(context, _rate_classes(document, name))
    refused = next((d for d in decisions if not d.allowed), None)
    if refused is not None:
        request.scope[DECIDED] = decisions
        return None
    try:
        result = await run(
            plan,
            context=context,
            root_value=await view.get_root_value(request),  # type: ignore[func-returns-value]
            variables=coerced,
        )
    except Exception:  # Unsupported, or anything the general path reports its own way
        request.scope[DECIDED] = decisions
        request.scope[PLAN_FAILED] = True
        return None
    if decisions:
        shown = min(decisions, key=lambda d: d.remaining)
        # as MutableHeaders.update would add them to a response without them, minus its work
        sub_response.raw_headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in shown.headers().items()
        )
    return view.create_response({"data": result}, sub_response)


async def _count(context: Any, classes: list[RateClass]) -> list[Decision]:
    """The operation's hits against the caller's budgets, as RateLimitOperations takes them."""
    services = context.services
    client = context.request.client
    ip = client.host if client else None
    decisions: list[Decision] = []
    for rate_class in classes:
        key = caller_key(
            secret=services.jwt_secret, token=context.token, ip=ip, per_ip=rate_class in PER_IP
        )
        decision = await services.rate_limiter.hit(rate_class, key)
        if decision is not None:
            decisions.append(decision)
    return decisions
