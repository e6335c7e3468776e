"""Schemathesis against a real `cowatch serve`: /openapi.json and the GraphQL schema.

No 5xx and no answer outside the documented shape. The seed is fixed, so a failure
reproduces with the same command; FUZZ_EXAMPLES bounds the run (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

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
            for name in ("API", "LOGIN", "SIGNUP", "UPLOAD", "TIMESTAMP")
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
    headers = {"Authorization": f"Bearer {token}"}

    def check(case: Any) -> None:
        # A schema cannot say "a decodable video": random bytes are rightly refused with 400.
        excluded = [positive_data_acceptance] if case.path == "/api/videos/upload" else []
        case.call_and_validate(
            base_url=server.url, headers=headers, excluded_checks=excluded, timeout=30
        )

    runs = _fuzz_all(schema, [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], check)
    assert runs >= 20
    assert "ERROR" not in server.log()


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
    headers = {"Authorization": f"Bearer {token}"}

    def check(case: Any) -> None:
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
