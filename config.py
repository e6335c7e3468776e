"""The one settings object: every environment variable Cowatch reads is declared here."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "changethis", "jwt-secret"}
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Cowatch configuration; defaults are the embedded mode that needs nothing installed."""

    model_config = SettingsConfigDict(env_prefix="COWATCH_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Path("./cowatch-data")
    database_url: str | None = None
    redis_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    jwt_secret: str | None = None
    jwt_ttl_s: int = Field(default=24 * 3600, ge=60)
    #: the origin clients use (`https://cowatch.example`); unset: each request's own scheme
    #: and Host (resolvers/urls.py), so a server on a LAN address hands out LAN addresses
    public_url: str | None = None
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    user_quota_bytes: int = Field(default=20 * 1024**3, ge=1)
    max_duration_s: float = Field(default=4 * 3600, gt=0)
    transcode_workers: int = Field(default=1, ge=1)
    transcode_timeout_s: int = Field(default=3600, ge=10)
    #: a running job's hold on its arq job, renewed every third of it: a job whose worker died
    #: is run again by another worker this long after the last renewal
    transcode_lease_s: int = Field(default=30, ge=3)
    #: the arq queue (Redis key) transcode jobs go through; tests use one of their own
    transcode_queue: str = "cowatch:transcode"
    #: width x height x frames/s x seconds one upload may decode (a frame counts at least
    #: 320x240), checked when probed and while decoding; default: 4 h of 1080p at 30 frames/s
    transcode_max_pixels: int = Field(default=1920 * 1080 * 30 * 4 * 3600, ge=1)
    #: wall-clock transcoding seconds one user's uploads may use in 24 h; past it, uploads are
    #: refused (429) until enough of the day's runs age out
    transcode_seconds_per_day: int = Field(default=6 * 3600, ge=1)
    #: `videoProcessing` subscriptions one user may hold open at once, counted per process
    max_processing_subscriptions_per_user: int = Field(default=10, ge=1)
    cors_origins: str = ""
    graphql_introspection: bool = True
    log_level: str = "info"
    # Rate limits ("N/period", e.g. "600/minute", "5/15 minutes"), per user or per IP.
    rate_limit_enabled: bool = True
    rate_limit_api: str = "600/minute"
    rate_limit_login: str = "20/minute"
    rate_limit_signup: str = "10/minute"
    rate_limit_upload: str = "30/hour"
    rate_limit_timestamp: str = "50/10 seconds"
    #: joining a party, per client address (guessing invite codes)
    rate_limit_party_join: str = "30/minute"
    #: a party member's player reports (READY/BUFFERING), per member
    rate_limit_player_state: str = "30/10 seconds"
    #: chat messages, per party member
    rate_limit_chat: str = "5/5 seconds"
    #: reactions, per party member (stricter than chat: they are one tap each)
    rate_limit_reaction: str = "3/5 seconds"
    rate_limit_prefix: str = "cowatch-rl"
    # Socket flood control, per connection: messages a second, burst, refusals before closing.
    ws_message_rate: float = Field(default=20.0, gt=0)
    ws_message_burst: int = Field(default=200, ge=1)
    ws_flood_strikes: int = Field(default=50, ge=1)
    #: subscriptions (or in-flight GraphQL operations) one socket may hold
    ws_max_subscriptions: int = Field(default=100, ge=1)
    #: the largest client message a socket reads at all (bytes); larger ones are refused unparsed
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    # Sockets one account / one client address may hold open at once, counted per process.
    max_sockets_per_user: int = Field(default=32, ge=1)
    max_sockets_per_address: int = Field(default=512, ge=1)
    # Login lockout: this many failures within the window lock the account for lock_s.
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_s: int = Field(default=15 * 60, ge=1)
    login_lock_s: int = Field(default=15 * 60, ge=1)
    # GraphQL document limits, checked before execution.
    graphql_max_depth: int = Field(default=10, ge=1)
    graphql_max_aliases: int = Field(default=15, ge=1)
    graphql_max_tokens: int = Field(default=2000, ge=10)
    graphql_max_list_limit: int = Field(default=100, ge=1)
    #: parsed + validated GraphQL documents kept (and persisted queries known), counted in bytes
    #: of document text; least recently used go first
    graphql_document_cache_bytes: int = Field(default=1024 * 1024, ge=0)
    # Request size caps, enforced while the bytes arrive (docs/RELIABILITY.md).
    #: any request body that is not a multipart upload: REST JSON, GraphQL JSON, forms
    max_json_bytes: int = Field(default=64 * 1024, ge=1024)
    #: a GraphQL document (the query text, comments and whitespace included), before parsing
    graphql_max_bytes: int = Field(default=32 * 1024, ge=256)
    # Password hashing (argon2, 64 MiB each): at most this many at once, this many waiting.
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    hash_queue: int = Field(default=32, ge=0)
    #: run queries whose documents compile by their plan (schema/compiled.py), not field by field
    graphql_compiled_plans: bool = True
    #: database connections kept open per process, and how many more may be opened at peaks
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    #: how long the feed's count of videos (its total pages) may be served from memory, seconds:
    #: a new or removed video changes the totals within this time (the pages themselves at once)
    feed_count_ttl_s: float = Field(default=5.0, ge=0)

    # Watch parties.
    #: a party with nobody online for this long ends by itself (seconds)
    party_idle_s: int = Field(default=3600, ge=10)
    #: how long a playhead change waits for members to be ready before playing anyway (seconds)
    party_ready_timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: how often a party socket is pinged, and how long a missing answer takes to close it
    #: (seconds): a tab that vanished without a close frame is noticed within their sum
    party_ping_interval_s: float = Field(default=0.5, gt=0)
    party_ping_timeout_s: float = Field(default=1.0, gt=0)
    #: which websocket clients get a 2-byte segment behind each turn's frames, so a lost frame
    #: is resent about a round trip later instead of after the 200 ms+ loss probe
    #: (realtime/uvicorn_writer.py): "remote" (not on this host, also through a trusted proxy
    #: on this host), "always" (every socket), "never"
    ws_follow_up: Literal["remote", "always", "never"] = "remote"
    #: how long a member token (guests' credential) stays valid (seconds)
    party_member_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)

    @property
    def cors_origin_list(self) -> list[str]:
        """Origins allowed to call cross-origin; `*` alone means any origin, never with cookies."""
        origins = [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
        if "*" in origins and len(origins) > 1:
            raise ValueError("COWATCH_CORS_ORIGINS: '*' cannot be combined with other origins")
        return origins

    @property
    def cors_any_origin(self) -> bool:
        """`COWATCH_CORS_ORIGINS='*'`: any site may call with a bearer token, never with cookies."""
        return self.cors_origin_list == ["*"]

    @property
    def embedded(self) -> bool:
        """True when the database is the SQLite file in the data dir (no external services)."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cowatch.db').resolve()}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'media').resolve()}"

    def resolved_jwt_secret(self) -> str:
        """The signing secret: from the environment, or generated once into the data dir."""
        if self.jwt_secret:
            if (
                self.jwt_secret.lower() in PLACEHOLDER_SECRETS
                or len(self.jwt_secret) < MIN_SECRET_LENGTH
            ):
                raise ValueError(
                    "COWATCH_JWT_SECRET must be a random string of at least 32 characters"
                )
            return self.jwt_secret
        if not self.embedded:
            raise ValueError("COWATCH_JWT_SECRET is required when using an external database")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
