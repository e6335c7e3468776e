"""The uvicorn adapter checks itself: batched writes where it can, plain sends where not."""

from __future__ import annotations

import logging

import pytest

from realtime import uvicorn_writer


def test_on_the_installed_uvicorn_the_batching_protocol_is_used() -> None:
    assert uvicorn_writer.problems() == []
    protocol = uvicorn_writer.protocol_class()
    assert isinstance(protocol, type) and protocol.__name__ == "BatchingWebSocketProtocol"


def test_outside_the_tested_range_it_falls_back_to_uvicorns_own_protocol_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(uvicorn_writer, "TESTED", ((0, 1), (0, 2)))
    monkeypatch.setattr(uvicorn_writer, "NEEDED", (*uvicorn_writer.NEEDED, "gone_in_this_release"))
    caplog.set_level(logging.WARNING, logger="cowatch.realtime")
    assert uvicorn_writer.protocol_class() == "auto"
    (warning,) = [r for r in caplog.records if "batched websocket writes are off" in r.message]
    assert "outside the tested range" in warning.message
    assert "gone_in_this_release" in warning.message
