"""GraphiQL as Strawberry ships it, with an offline note and a Content-Security-Policy of hashes.

No installed Python package ships GraphiQL's JavaScript (Strawberry's page loads React and
GraphiQL from unpkg.com with Subresource Integrity), so offline the page cannot start. Until it
does, `#graphiql` shows a note pointing at what works without the network; React replaces it once
GraphiQL loads. The policy allows exactly the asset URLs the page names, its one inline script
and its one inline stylesheet by hash, and the page's own origin for queries and sockets.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

LOADING = '<div id="graphiql" class="graphiql-container">Loading...</div>'
OFFLINE_NOTE = (
    '<div id="graphiql" class="graphiql-container"><p>Loading GraphiQL from unpkg.com&hellip;</p>'
    "<p>If this stays, this browser cannot reach unpkg.com: Cowatch does not bundle GraphiQL's "
    "code. The API works without it: POST queries to <code>/graphql</code> with any GraphQL "
    "client, print the schema with <code>cowatch schema</code>, and read the REST face at "
    '<a href="/docs">/docs</a>.</p></div>'
)
ASSET = re.compile(r'<(?:script|link)\b[^>]*?(?:src|href)="(https://[^"]+)"', re.S)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass(frozen=True)
class IdePage:
    html: str
    csp: str

    @classmethod
    def from_strawberry(cls, html: str) -> IdePage:
        """Our note into Strawberry's page, and the policy derived from what the page holds."""
        if LOADING not in html:
            raise RuntimeError("Strawberry's GraphiQL page changed: update schema/ide.py")
        html = html.replace(LOADING, OFFLINE_NOTE)
        scripts = [url for url in ASSET.findall(html) if url.endswith(".js")]
        styles = [url for url in ASSET.findall(html) if url.endswith(".css")]
        inline_scripts = [_hash(body) for body in INLINE_SCRIPT.findall(html)]
        inline_styles = [_hash(body) for body in INLINE_STYLE.findall(html)]
        # Fonts and images a stylesheet names resolve next to it: its directory, nothing wider.
        beside = " ".join(sorted({url.rsplit("/", 1)[0] + "/" for url in styles}))
        csp = (
            f"default-src 'none'; script-src {' '.join(scripts + inline_scripts)}; "
            f"style-src {' '.join(styles + inline_styles)}; img-src 'self' data: {beside}; "
            f"font-src data: {beside}; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        )
        return cls(html=html, csp=csp)
