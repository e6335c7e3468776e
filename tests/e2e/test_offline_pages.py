"""/docs and GraphiQL in a real Chromium that can reach nothing but the Cowatch server.

/docs must render fully offline under its CSP; GraphiQL, whose code comes from unpkg.com, must
say why it cannot start, and its policy must let its own inline code run (no CSP violation).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser import chromium
from tests.servers import Server, cowatch_serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("offline")
    env = {"COWATCH_DATA_DIR": str(root / "data")}
    for name in ("COWATCH_DATABASE_URL", "COWATCH_REDIS_URL", "COWATCH_STORAGE_URL"):
        env[name] = ""
    with cowatch_serve(env, root) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def offline_page(browser: Browser, server: Server) -> tuple[Page, list[str], list[str]]:
    """A tab where every request to another origin fails, as on a machine without internet."""
    context = browser.new_context()
    blocked: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_server)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    return page, console, blocked


def test_docs_render_offline_under_their_policy(browser: Browser, server: Server) -> None:
    page, console, blocked = offline_page(browser, server)
    page.goto(f"{server.url}/docs")
    expect(page.locator("h1")).to_contain_text("Cowatch REST")
    expect(page.locator("#get_feed")).to_contain_text("/api/videos/feed")
    expect(page.locator("#schema-FeedItem")).to_contain_text("thumbnail_url")
    # The inline stylesheet applied: it is allowed by its hash, nothing else is needed.
    width = page.evaluate("getComputedStyle(document.body).maxWidth")
    assert width == "1120px", width
    assert not blocked
    assert not [line for line in console if "Content Security Policy" in line], console
    page.context.close()


def test_graphiql_offline_explains_itself_without_csp_violations(
    browser: Browser, server: Server
) -> None:
    page, console, blocked = offline_page(browser, server)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/graphql", wait_until="load")
    expect(page.locator("#graphiql")).to_contain_text("cannot reach unpkg.com")
    expect(page.locator("#graphiql a[href='/docs']")).to_be_visible()
    assert any(url.startswith("https://unpkg.com/graphiql@") for url in blocked), blocked
    # Its inline bootstrap ran (and failed only for want of its libraries): the hash matched.
    assert any("is not defined" in error for error in errors), errors
    assert not [line for line in console if "Content Security Policy" in line], console
    page.context.close()
