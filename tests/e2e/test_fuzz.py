"""Schemathesis against a real `cowatch serve`: /openapi.json and the GraphQL schema; then the
hand-written hostile shapes of issue 10 over HTTP and on the three socket faces (`/ws`,
graphql-ws, graphql-transport-ws).

No 5xx, no answer outside the documented shape, sockets answered with an error frame (or the
protocol's close code) instead of a crash, and no ERROR line in the server's log. The seed is
fixed, so a failure reproduces with the same command; FUZZ_EXAMPLES bounds the run (see
docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import hypothesis
import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.openapi.checks import positive_data_acceptance
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from resolvers import auth
from tests.conftest import TEST_SECRET
from tests.servers import Server, cowatch_serve

FUZZ_SEED = 20261123
FUZZ_EXAMPLES = 20
#: operations that hash a password (argon2 by design costs tens of ms) get fewer examples
SLOW_EXAMPLES = 6
SLOW = ("/api/auth/signup", "/api/auth/login", "Mutation.login", "Mutation.signup")
PASSWORD = "fuzzing password"
pytestmark = pytest.mark.timeout(300)

# Multipart uploads cannot travel in a JSON GraphQL request: a string must be refused cleanly.
schemathesis.graphql.scalar("Upload", st.just("not-a-file").map(nodes.String))
# JSON Schema's `email` admits reserved domains (`.test`) that signup rightly refuses.
schemathesis.openapi.format(
    "email",
    st.from_regex(r"\A[a-z0-9]{1,20}(\+[a-z0-9]{1,8})?\Z").map(lambda u: f"{u}@example.com"),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        "COWATCH_DATA_DIR": str(tmp / "data"),
        "COWATCH_DATABASE_URL": "",
        "COWATCH_REDIS_URL": "",
        "COWATCH_STORAGE_URL": "",
        # Limits stay on (their code path is fuzzed too) but high enough not to answer 429.
        **{
            f"COWATCH_RATE_LIMIT_{name}": "100000/minute"
            for name in (
                "API",
                "LOGIN",
                "SIGNUP",
                "UPLOAD",
                "TIMESTAMP",
                "PARTY_JOIN",
                "PLAYER_STATE",
                "CHAT",
                "REACTION",
            )
        },
        "COWATCH_LOGIN_MAX_FAILURES": "1000000",
        "COWATCH_JWT_SECRET": TEST_SECRET,
    }
    with cowatch_serve(env, tmp) as running:
        yield running


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    account = {"email": "fuzz@example.com", "password": PASSWORD, "username": "fuzzer"}
    assert httpx.post(f"{server.url}/api/auth/signup", json=account).status_code == 201
    login = httpx.post(f"{server.url}/api/auth/login", json=account)
    assert login.status_code == 200
    token: str = login.json()["access_token"]
    return token


@pytest.fixture
def fresh_token(server: Server, token: str) -> str:
    """A token of its own for a test: none of the hand-written tests depends on another's."""
    account = {"email": "fuzz@example.com", "password": PASSWORD}
    login = httpx.post(f"{server.url}/api/auth/login", json=account, timeout=60)
    assert login.status_code == 200, login.text
    fresh: str = login.json()["access_token"]
    return fresh


def _headers(token: str, logs_out: bool) -> dict[str, str]:
    """The fuzzed token, or for a logout a throwaway one of the same user (signed with the
    server's secret): a fuzzed logout would revoke the shared token, and every later operation
    would only be fuzzed signed out."""
    if logs_out:
        user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
        token = auth.issue_token(secret=TEST_SECRET, user_id=user_id, ttl_s=600)
    return {"Authorization": f"Bearer {token}"}


def _signed_in(server: Server, token: str) -> bool:
    query = {"query": "{ me { id } }"}
    answer = httpx.post(f"{server.url}/graphql", json=query, headers=_headers(token, False))
    return bool(answer.json()["data"]["me"])


def _run(operation: Any, mode: GenerationMode, check: Callable[[Any], None]) -> None:
    slow = any(name in operation.label for name in SLOW)

    @hypothesis.seed(FUZZ_SEED)
    @hypothesis.settings(
        max_examples=SLOW_EXAMPLES if slow else FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        check(case)

    fuzz()


def _fuzz_all(schema: Any, modes: list[GenerationMode], check: Callable[[Any], None]) -> int:
    failures: list[str] = []
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:
            try:
                _run(operation, mode, check)
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to get wrong, e.g. no invalid request exists for GET /healthz
            except Exception as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
            count += 1
    assert not failures, "\n\n".join(failures)
    return count


def test_rest_api_matches_its_openapi_document(server: Server, token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")

    def check(case: Any) -> None:
        # A schema cannot say "a decodable video": random bytes are rightly refused with 400;
        # nor "a user without a channel": the seed contract answers a second one 411; nor a
        # chat body's "1 to 2,000 characters after trimming, no control characters".
        refusable = case.path == "/api/videos/upload" or (
            case.method == "POST"
            and case.path in ("/api/channels", "/api/parties/{party_id}/messages")
        )
        excluded = [positive_data_acceptance] if refusable else []
        # Nor "the body's video_id is the URL's" (the seed's body repeats it): make it so.
        body = case.body if isinstance(case.body, dict) else {}
        if case.path == "/api/videos/{video_id}/time" and "video_id" in body:
            body["video_id"] = unquote(case.path_parameters["video_id"])  # as the server reads it
        headers = _headers(token, case.path == "/api/auth/logout")
        case.call_and_validate(
            base_url=server.url, headers=headers, excluded_checks=excluded, timeout=30
        )

    runs = _fuzz_all(schema, [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], check)
    assert runs >= 20
    assert "ERROR" not in server.log()
    assert _signed_in(server, token), "the fuzzed token was revoked part-way"


KNOWN_CODES = {
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "ALREADY_HAS_CHANNEL",
    "INVALID_CREDENTIALS",
    "GRAPHQL_VALIDATION_FAILED",
    "PAYLOAD_TOO_LARGE",
    "QUOTA_EXCEEDED",
    "BAD_REQUEST",
}


def test_graphql_schema_never_answers_5xx_or_unmasked(server: Server, token: str) -> None:
    """Domain errors are legitimate answers here (schemathesis counts any `errors` as a bug)."""
    schema = schemathesis.graphql.from_url(f"{server.url}/graphql")

    def check(case: Any) -> None:
        headers = _headers(token, case.operation.label == "Mutation.logout")
        response = case.call(base_url=server.url, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert isinstance(body, dict)
        assert set(body) <= {"data", "errors", "extensions"}, body
        assert body.get("data") is not None or body.get("errors"), body
        for error in body.get("errors") or []:
            assert isinstance(error["message"], str)
            assert error["extensions"]["code"] in KNOWN_CODES, error

    runs = _fuzz_all(schema, [GenerationMode.POSITIVE], check)
    assert runs >= 8
    assert "ERROR" not in server.log()
    assert _signed_in(server, token), "the fuzzed token was revoked part-way"


def _absurd_token() -> str:
    """Validly signed, expiring in the year 3e12."""
    claims = {"sub": "nobody", "iat": int(time.time()), "exp": 1e20, "jti": "absurd"}
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


NESTED = b"[" * 60_000
SUBSCRIPTION = 'subscription { videoTimestamp(videoId: "x") { timestamp } }'
ID_QUERY = "query($id: ID!) { video(id: $id) { id } }"
JSON = {"Content-Type": "application/json"}
#: (method, path, headers, body, statuses a correct server may answer)
HOSTILE: list[tuple[str, str, dict[str, str], bytes, set[int]]] = [
    ("POST", "/graphql", JSON, NESTED, {400}),
    ("POST", "/api/auth/login", JSON, NESTED, {400}),
    ("POST", "/api/auth/signup", JSON, b'{"email": ' + NESTED, {400}),
    (
        "POST",
        "/graphql",
        JSON,
        json.dumps({"query": ID_QUERY, "variables": {"id": [1, 2]}}).encode(),
        {200},
    ),
    (
        "POST",
        "/graphql",
        JSON,
        json.dumps({"query": ID_QUERY, "variables": {"id": {"a": 1}}}).encode(),
        {200},
    ),
    ("POST", "/graphql", JSON, json.dumps({"query": SUBSCRIPTION}).encode(), {400}),
    ("GET", "/graphql?query=" + SUBSCRIPTION.replace(" ", "%20"), {}, b"", {400}),
    ("POST", "/graphql", JSON, b'{"query": 5}', {400}),
    ("POST", "/graphql", JSON, b'{"query": "{ me { id } }", "variables": []}', {400}),
    ("POST", "/graphql", JSON, b"[]", {400}),
    ("POST", "/graphql", {"Content-Type": "text/plain"}, b'{"query": "{ me { id } }"}', {400}),
    (
        "POST",
        "/graphql",
        JSON,
        json.dumps({"query": "#" * 40_000 + "\n{ me { id } }"}).encode(),
        {413},
    ),
    ("POST", "/api/auth/login", JSON, b'{"email": "' + b"a" * 70_000 + b'"}', {413}),
    ("POST", "/api/auth/login", JSON, b'"just a string"', {400}),
    ("POST", "/api/auth/login", JSON, b'{"email": 1, "password": []}', {400}),
    ("POST", "/api/auth/login", JSON, b"\xff\xfe", {400}),
    (
        "POST",
        "/graphql",
        {"Content-Type": "multipart/form-data; boundary=x"},
        b"--x\r\n" * 1000,
        {403},
    ),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "expected"), HOSTILE)
def test_hostile_shapes_get_a_clear_4xx(
    server: Server,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    expected: set[int],
) -> None:
    response = httpx.request(method, f"{server.url}{path}", headers=headers, content=body)
    assert response.status_code in expected, response.text
    answer = response.json()
    errors = answer["errors"] if path.startswith("/graphql") else [answer["error"]]
    for error in errors:
        code = error["extensions"]["code"] if "extensions" in error else error["code"]
        assert code in KNOWN_CODES, error
    assert "ERROR" not in server.log()


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/channels"), ("PUT", "/api/videos/none/time")]
)
def test_nested_json_on_signed_in_routes_is_a_400(
    server: Server, fresh_token: str, method: str, path: str
) -> None:
    """Signed in, so the body reaches the JSON decoder (anonymous calls stop at 403)."""
    headers = {**JSON, "Authorization": f"Bearer {fresh_token}"}
    response = httpx.request(method, f"{server.url}{path}", headers=headers, content=NESTED)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in KNOWN_CODES
    assert "ERROR" not in server.log()


@pytest.mark.parametrize("face", ["rest", "graphql"])
def test_an_absurd_expiry_is_an_invalid_token(server: Server, face: str) -> None:
    headers = {"Authorization": f"Bearer {_absurd_token()}"}
    if face == "rest":
        response = httpx.post(f"{server.url}/api/channels", headers=headers, json={})
        assert response.status_code == 401, response.text
        assert response.json()["error"]["message"] == "token is invalid"
    else:
        query = {"query": "{ me { id } }"}
        response = httpx.post(f"{server.url}/graphql", headers=headers, json=query)
        assert response.status_code == 200
        error = response.json()["errors"][0]
        assert (error["message"], error["extensions"]["code"]) == (
            "token is invalid",
            "UNAUTHENTICATED",
        )
    assert "ERROR" not in server.log()


# -- sockets: the same hostile shapes on /ws, graphql-ws and graphql-transport-ws ----------

TRANSPORT = [Subprotocol("graphql-transport-ws")]
LEGACY = [Subprotocol("graphql-ws")]
#: 60 KB of `[`: under the 64 KiB frame cap, so it reaches the JSON decoder
NESTED_FRAME = "[" * 60_000
#: over the 64 KiB frame cap (COWATCH_WS_MAX_MESSAGE_BYTES): refused unread
OVERSIZE_FRAME = json.dumps({"type": "start", "id": "big", "payload": {"query": "#" * 70_000}})
#: a subscribe frame under the frame cap whose document is over the 32 KiB document cap
LONG_DOCUMENT = "#" * 40_000 + "\n{ __typename"  # unparseable: the size is refused first
SOCKET_TIMEOUT_S = 30


async def _next(conn: ClientConnection) -> dict[str, Any]:
    """The next JSON frame, skipping keepalive pings."""
    while True:
        async with asyncio.timeout(SOCKET_TIMEOUT_S):
            message: dict[str, Any] = json.loads(await conn.recv())
        if message.get("type") not in ("ping", "ka"):
            return message


async def _close_of(conn: ClientConnection) -> tuple[int, str]:
    """Read until the server closes: its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await _next(conn)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _graphql_socket(server: Server, protocols: list[Subprotocol], token: str) -> Any:
    conn = await connect(f"{server.ws_url}/graphql", subprotocols=protocols, max_size=None)
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await conn.send(json.dumps(init))
    ack = await _next(conn)
    assert ack["type"] == "connection_ack", ack
    return conn


WS_SHAPES = [
    ("[]", "INVALID_MESSAGE"),
    ('"payload"', "INVALID_MESSAGE"),
    ('{"type": "video:subscribe", "payload": "str"}', "BAD_USER_INPUT"),
    ('{"type": 7}', "UNKNOWN_TYPE"),
    ('{"type": "video:subscribe", "video_id": ["a", "b"]}', "BAD_USER_INPUT"),
    (NESTED_FRAME, "INVALID_JSON"),
    ("not json", "INVALID_JSON"),
    (OVERSIZE_FRAME, "MESSAGE_TOO_LARGE"),
]


async def test_hostile_frames_on_ws_get_an_error_frame_and_the_socket_stays_open(
    server: Server, fresh_token: str
) -> None:
    headers = {"Authorization": f"Bearer {fresh_token}"}
    async with connect(f"{server.ws_url}/ws", additional_headers=headers, max_size=None) as conn:
        for frame, code in WS_SHAPES:
            await conn.send(frame)
            reply = await _next(conn)
            assert (reply["type"], reply["code"]) == ("error", code), (frame[:40], reply)
        # Still open and answering.
        await conn.send(json.dumps({"type": "video:subscribe", "video_id": "no-such-video"}))
        assert (await _next(conn))["code"] == "NOT_FOUND"
    assert "ERROR" not in server.log()


LEGACY_SHAPES = [
    "[]",
    '"payload"',
    '{"type": 7}',
    '{"type": "no-such-type", "id": "1"}',
    '{"type": "start", "id": "1", "payload": "str"}',
    '{"type": "start", "id": "1", "payload": {"query": 5}}',
    '{"type": "start", "id": "1", "payload": {"query": "{ me { id } }", "variables": [1]}}',
    '{"type": "start", "id": ["x"], "payload": {"query": "{ me { id } }"}}',
    NESTED_FRAME,
    "not json",
    OVERSIZE_FRAME,
]


async def test_hostile_frames_on_graphql_ws_get_an_error_frame_and_the_socket_stays_open(
    server: Server, fresh_token: str
) -> None:
    conn = await _graphql_socket(server, LEGACY, fresh_token)
    try:
        for frame in LEGACY_SHAPES:
            await conn.send(frame)
            reply = await _next(conn)
            assert reply["type"] == "error", (frame[:40], reply)
            assert isinstance(reply["payload"]["message"], str), reply
        start = {"type": "start", "id": "ok", "payload": {"query": "{ me { username } }"}}
        await conn.send(json.dumps(start))
        data = await _next(conn)
        assert data["payload"]["data"]["me"]["username"] == "fuzzer", data
    finally:
        await conn.close()
    assert "ERROR" not in server.log()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[]", 4400),
        ('"payload"', 4400),
        ('{"type": 7}', 4400),
        ('{"id": "1", "type": "subscribe", "payload": "str"}', 4400),
        ('{"id": ["x"], "type": "subscribe", "payload": {"query": "{ me { id } }"}}', 4400),
        ('{"id": "1", "type": "no-such-type"}', 4400),
        (NESTED_FRAME, 4400),
        ("not json", 4400),
        (OVERSIZE_FRAME.replace('"start"', '"subscribe"'), 1009),
    ],
    ids=[
        "list",
        "string",
        "type-number",
        "payload-string",
        "id-list",
        "unknown-type",
        "nested",
        "not-json",
        "oversize",
    ],
)
async def test_hostile_frames_on_graphql_transport_ws_close_with_its_protocol_code(
    server: Server, fresh_token: str, frame: str, code: int
) -> None:
    """The protocol (graphql-ws's PROTOCOL.md) closes on a message it cannot read: 4400,
    or 1009 for a frame over the cap; never a dropped connection or a traceback."""
    conn = await _graphql_socket(server, TRANSPORT, fresh_token)
    try:
        await conn.send(frame)
        closed_with, reason = await _close_of(conn)
        assert closed_with == code, reason
        assert reason
    finally:
        await conn.close()
    assert "ERROR" not in server.log()


ID_LIST = {"query": "query($id: ID!) { video(id: $id) { id } }", "variables": {"id": [1, 2]}}
LOGIN = (
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { username } } }"
)


async def test_operations_of_every_shape_on_both_graphql_protocols_keep_the_socket(
    server: Server, fresh_token: str
) -> None:
    """A list for an ID!, a document over the byte cap, a mutation over legacy `start` and over
    `subscribe`: each gets its answer for its id, and the socket carries on."""
    for protocols, start in ((LEGACY, "start"), (TRANSPORT, "subscribe")):
        conn = await _graphql_socket(server, protocols, fresh_token)
        try:
            for op_id, payload, code in (
                ("ids", ID_LIST, "GRAPHQL_VALIDATION_FAILED"),
                ("long", {"query": LONG_DOCUMENT}, "PAYLOAD_TOO_LARGE"),
            ):
                await conn.send(json.dumps({"id": op_id, "type": start, "payload": payload}))
                answer = await _next(conn)
                assert answer["id"] == op_id, answer
                errors = (
                    answer["payload"].get("errors")
                    if answer["type"] in ("data", "next")
                    else answer["payload"]
                )
                errors = errors if isinstance(errors, list) else [errors]
                assert errors and errors[0]["extensions"]["code"] == code, answer
                if answer["type"] in ("data", "next"):
                    assert (await _next(conn))["type"] == "complete"
            login = {"query": LOGIN, "variables": {"e": "fuzz@example.com", "p": PASSWORD}}
            await conn.send(json.dumps({"id": "m", "type": start, "payload": login}))
            answer = await _next(conn)
            assert answer["type"] in ("data", "next"), answer
            assert "errors" not in answer["payload"], answer
            assert answer["payload"]["data"]["login"]["user"]["username"] == "fuzzer"
        finally:
            await conn.close()
    assert "ERROR" not in server.log()


async def test_an_absurd_expiry_on_a_socket_is_an_invalid_token(server: Server) -> None:
    absurd = _absurd_token()
    async with connect(
        f"{server.ws_url}/ws", additional_headers={"Authorization": f"Bearer {absurd}"}
    ) as conn:
        assert await _close_of(conn) == (4401, "token is invalid")
    for protocols in (TRANSPORT, LEGACY):
        async with connect(f"{server.ws_url}/graphql", subprotocols=protocols) as conn:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {absurd}"}}
            await conn.send(json.dumps(init))
            if protocols is LEGACY:
                refused = await _next(conn)
                assert refused["type"] == "connection_error", refused
            assert await _close_of(conn) == (4401, "token is invalid")
    assert "ERROR" not in server.log()
