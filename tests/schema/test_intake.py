"""GraphQL over HTTP is taken in safely: multipart bodies only from signed-in callers, read as
they stream with one file at most, documents capped by bytes before parsing, no subscriptions.

Against a real `cowatch serve`, whose memory and writes (/proc/<pid>) show what a body cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.rawhttp import multipart, process_io, rss_bytes, send
from tests.servers import Server, cowatch_serve

MiB = 1024 * 1024
UPLOAD_CAP = 4 * MiB
UPLOADS_PER_HOUR = 20
BOUNDARY = "cowatch-test-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
UPLOAD = 'mutation($file: Upload!) { uploadVideo(file: $file, title: "t") { id } }'
ONE_FILE_MAP = json.dumps({"0": ["variables.file"]}).encode()
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("intake")
    (tmp / "tmp").mkdir()
    env = {
        "COWATCH_DATA_DIR": str(tmp / "data"),
        "COWATCH_DATABASE_URL": "",
        "COWATCH_REDIS_URL": "",
        "COWATCH_STORAGE_URL": "",
        "COWATCH_MAX_UPLOAD_BYTES": str(UPLOAD_CAP),
        "COWATCH_RATE_LIMIT_UPLOAD": f"{UPLOADS_PER_HOUR}/hour",
        "TMPDIR": str(tmp / "tmp"),
    }
    with cowatch_serve(env, tmp) as running:
        yield running


def sign_up(server: Server, name: str) -> str:
    account = {
        "email": f"{name}@example.com",
        "password": "intake test password",
        "username": name,
    }
    assert httpx.post(f"{server.url}/api/auth/signup", json=account).status_code == 201
    response = httpx.post(f"{server.url}/api/auth/login", json=account)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return sign_up(server, "uploader")


def staged(server: Server) -> list[Path]:
    data = Path(server.log_path).parent / "data"
    return [*(data / "uploads").glob("*"), *(data.parent / "tmp").glob("*")]


def upload_parts(file: bytes | Iterator[bytes]) -> Iterator[bytes]:
    """operations, map, then a file part whose content arrives in the given pieces."""
    operations = json.dumps({"query": UPLOAD, "variables": {"file": None}}).encode()
    *fields, _closing = multipart(
        [("operations", None, operations), ("map", None, ONE_FILE_MAP)], "x"
    )
    yield from fields
    yield b'--x\r\nContent-Disposition: form-data; name="0"; filename="a.mp4"\r\n\r\n'
    yield from [file] if isinstance(file, bytes) else file
    yield b"\r\n--x--\r\n"


def graphql_error(answer_json: dict[str, object]) -> tuple[str, str]:
    errors = answer_json["errors"]
    assert isinstance(errors, list)
    return errors[0]["extensions"]["code"], errors[0]["message"]


async def test_hundreds_of_anonymous_parts_are_refused_before_they_are_read(
    server: Server,
) -> None:
    pid = server.process.pid
    rss, written = rss_bytes(pid), process_io(pid)["wchar"]
    megabyte = bytes(MiB)
    parts: list[tuple[str, str | None, bytes]] = [
        ("operations", None, b'{"query": "{ __typename }"}'),
        ("map", None, b"{}"),
    ]
    parts += [(f"f{i}", f"f{i}.bin", megabyte) for i in range(900)]

    answer = await send(
        f"{server.url}/graphql", headers=MULTIPART, chunks=multipart(parts, BOUNDARY)
    )

    assert answer.status == 403, answer.body
    assert graphql_error(answer.json())[0] == "UNAUTHENTICATED"
    assert not answer.sent_all
    assert answer.sent < 100 * MiB  # socket buffers, not the 900 MiB
    assert rss_bytes(pid) - rss < 32 * MiB
    assert process_io(pid)["wchar"] - written < MiB  # no temp files, no staging
    assert staged(server) == []


async def test_an_anonymous_chunked_upload_over_the_cap_writes_nothing(server: Server) -> None:
    pid = server.process.pid
    written = process_io(pid)["wchar"]
    pieces = (bytes(256 * 1024) for _ in range(4 * UPLOAD_CAP // (256 * 1024)))
    answer = await send(
        f"{server.url}/graphql",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        chunks=upload_parts(pieces),
    )
    assert answer.status == 403
    assert graphql_error(answer.json())[0] == "UNAUTHENTICATED"
    assert not answer.sent_all
    assert process_io(pid)["wchar"] - written < MiB
    assert staged(server) == []


async def test_a_signed_in_upload_over_the_cap_is_cut_off_and_removed(
    server: Server, token: str
) -> None:
    pieces = (bytes(256 * 1024) for _ in range(4 * UPLOAD_CAP // (256 * 1024)))
    answer = await send(
        f"{server.url}/graphql",
        headers={
            "Content-Type": "multipart/form-data; boundary=x",
            "Authorization": f"Bearer {token}",
        },
        chunks=upload_parts(pieces),
    )
    assert answer.status == 413, answer.body
    assert graphql_error(answer.json())[0] == "PAYLOAD_TOO_LARGE"
    assert not answer.sent_all
    assert answer.sent < 3 * UPLOAD_CAP
    assert staged(server) == []


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (  # two files in the map
            [
                ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
                ("map", None, b'{"0": ["variables.a"], "1": ["variables.b"]}'),
                ("0", "a.bin", bytes(1000)),
            ],
            "map: at most one file",
        ),
        (  # one file for two variables
            [
                ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
                ("map", None, b'{"0": ["variables.a", "variables.b"]}'),
                ("0", "a.bin", bytes(1000)),
            ],
            "map: a file goes to exactly one variable",
        ),
        (  # a file the map does not name
            [
                ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
                ("map", None, b'{"0": ["variables.a"]}'),
                ("1", "a.bin", bytes(1000)),
            ],
            "exactly one file is expected, in the '0' field",
        ),
        (  # a second file after the mapped one
            [
                ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
                ("map", None, b'{"0": ["variables.a"]}'),
                ("0", "a.bin", bytes(1000)),
                ("0", "b.bin", bytes(1000)),
            ],
            "exactly one file is expected",
        ),
        (  # the file before the map
            [
                ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
                ("0", "a.bin", bytes(1000)),
                ("map", None, b'{"0": ["variables.a"]}'),
            ],
            "operations and map must come before the file",
        ),
        (  # a map path that leads nowhere
            [
                ("operations", None, b'{"query": "{ __typename }"}'),
                ("map", None, b'{"0": ["variables.a.b.c"]}'),
                ("0", "a.bin", bytes(1000)),
            ],
            "map: a path does not lead",
        ),
        (  # operations nested too deeply for the decoder
            [("operations", None, b"[" * 50_000), ("map", None, b"{}")],
            "operations: nested too deeply",
        ),
        (  # more than 20 text parts
            [
                ("operations", None, b'{"query": "{ __typename }"}'),
                ("map", None, b"{}"),
                *((f"extra{i}", None, b"x") for i in range(19)),
            ],
            "too many form fields",
        ),
        (  # a text part over 64 KiB
            [
                ("operations", None, b'{"query": "{ __typename }"}'),
                ("map", None, b"{}"),
                ("extra", None, bytes(65 * 1024)),
            ],
            "extra: too long",
        ),
        (  # a part header over python-multipart's 4,224 bytes (a 5 KiB file name)
            [
                ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
                ("map", None, b'{"0": ["variables.a"]}'),
                ("0", "a" * 5 * 1024, bytes(1000)),
            ],
            "the multipart body is malformed",
        ),
    ],
    ids=[
        "two-files",
        "one-file-two-variables",
        "unnamed-file",
        "second-file",
        "file-before-map",
        "path-into-nothing",
        "nested-operations",
        "too-many-parts",
        "long-text-part",
        "long-part-headers",
    ],
)
async def test_the_map_is_enforced_before_the_file_is_read(
    server: Server, token: str, parts: list[tuple[str, str | None, bytes]], message: str
) -> None:
    answer = await send(
        f"{server.url}/graphql",
        headers={**MULTIPART, "Authorization": f"Bearer {token}"},
        chunks=multipart(parts, BOUNDARY),
    )
    assert answer.status == 400, answer.body
    code, text = graphql_error(answer.json())
    assert code == "BAD_USER_INPUT"
    assert text.startswith(message), text
    assert staged(server) == []


async def test_a_caller_over_the_upload_rate_limit_is_refused_before_the_body_is_read(
    server: Server,
) -> None:
    """The rate limit is checked at intake: the over-limit caller's 900 MiB are not read."""
    headers = {**MULTIPART, "Authorization": f"Bearer {sign_up(server, 'busy')}"}
    refused_at_map = [
        ("operations", None, b'{"query": "{ __typename }", "variables": {"a": null}}'),
        ("map", None, b'{"0": ["variables.a"], "1": ["variables.b"]}'),
    ]
    for _ in range(UPLOADS_PER_HOUR):  # each is counted at intake, then refused at its map
        answer = await send(
            f"{server.url}/graphql", headers=headers, chunks=multipart(refused_at_map, BOUNDARY)
        )
        assert answer.status == 400, answer.body
    pid = server.process.pid
    rss, written = rss_bytes(pid), process_io(pid)["wchar"]
    megabyte = bytes(MiB)
    parts: list[tuple[str, str | None, bytes]] = [
        ("operations", None, json.dumps({"query": UPLOAD, "variables": {"file": None}}).encode()),
        ("map", None, ONE_FILE_MAP),
    ]
    parts += [("0", "a.mp4", megabyte)] + [(f"f{i}", f"f{i}.bin", megabyte) for i in range(899)]

    answer = await send(f"{server.url}/graphql", headers=headers, chunks=multipart(parts, BOUNDARY))

    assert answer.status == 429, answer.body  # refused at intake, before GraphQL runs
    code, message = graphql_error(answer.json())
    assert code == "RATE_LIMITED", message
    assert answer.headers.get("retry-after"), answer.headers
    assert not answer.sent_all
    assert answer.sent < 100 * MiB
    assert rss_bytes(pid) - rss < 32 * MiB
    assert process_io(pid)["wchar"] - written < MiB
    assert staged(server) == []


def _document(padding: int) -> str:
    """`{ __typename }` behind a comment: bytes that are not tokens still count."""
    return "# " + "x" * padding + "\n{ __typename }"


async def test_documents_over_the_byte_cap_are_refused_before_parsing(server: Server) -> None:
    cap = 32 * 1024
    async with httpx.AsyncClient(base_url=server.url) as http:
        fits = await http.post("/graphql", json={"query": _document(cap - 100)})
        assert fits.status_code == 200, fits.text
        assert fits.json() == {"data": {"__typename": "Query"}}
        for response in (
            await http.post("/graphql", json={"query": _document(cap)}),
            await http.get("/graphql", params={"query": _document(cap)}),
            await http.post("/graphql", json={"query": "{" + " " * cap + "__typename }"}),
            # a syntax error if it were parsed: the size is refused first
            await http.post("/graphql", json={"query": _document(cap).removesuffix(" }")}),
        ):
            assert response.status_code == 413, response.text
            assert graphql_error(response.json()) == (
                "PAYLOAD_TOO_LARGE",
                f"the GraphQL document is larger than the {cap} byte limit",
            )


async def test_subscriptions_over_http_are_a_clear_400(server: Server) -> None:
    query = 'subscription { videoTimestamp(videoId: "x") { timestamp } }'
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/graphql", json={"query": query})
    assert response.status_code == 400, response.text
    code, message = graphql_error(response.json())
    assert code == "BAD_REQUEST"
    assert "websocket" in message
    assert "ERROR" not in server.log()
