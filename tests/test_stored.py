"""Recordings kept in a store: a dead instance's calls recovered, and what /calls shows."""

from __future__ import annotations

import json

import pytest

from aligner.service.store import open_store
from aligner.service.stored import StoredRecordings, call_record


async def test_recovery_marks_a_lost_call_ended_and_queues_it_until_the_queue_takes_it(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    store.put("call_live/call.json", json.dumps({"call_id": "call_live", "state": "recording",
                                                 "instance": "A"}).encode())
    store.put("call_over/call.json", json.dumps({"call_id": "call_over", "state": "queued",
                                                 "closed_by": "frontend"}).encode())
    queued, fail = [], [True]

    async def enqueue(url: str, call_id: str, renderers: list[str]) -> None:
        if fail.pop(0) if fail else False:
            raise ConnectionError("queue away")
        queued.append((url, call_id, tuple(renderers)))

    rec = StoredRecordings(tmp_path / "spool", store, ("vtt",), enqueue, "B")
    with pytest.raises(ConnectionError):  # the queue is away: the sweep tries again later
        await rec.recover("call_live", "A")
    record = call_record(store, "call_live")
    assert record["state"] == "queued" and record["close_reason"] == "instance_lost"
    assert record["lost_instance"] == "A" and record["closed_by"] == "recovery"
    assert await rec.recover("call_live", "A")  # marked already, queued now
    assert queued == [(store.url, "call_live", ("vtt",))]
    assert not await rec.recover("call_over", "A")  # ended normally: not touched
    assert not await rec.recover("call_absent", "A")
    assert call_record(store, "call_over")["closed_by"] == "frontend"
    rec.io.shutdown()


def test_a_call_shows_its_render_state_over_its_call_record(tmp_path):
    store = open_store(tmp_path.as_uri())
    store.put("call_a/call.json", json.dumps({"call_id": "call_a", "state": "queued",
                                              "close_reason": "frontend_closed"}).encode())
    assert call_record(store, "call_a")["state"] == "queued"
    store.put("call_a/render.json", json.dumps({"state": "done", "outputs": ["call.vtt"]}).encode())
    store.put("call_a/call.vtt", b"WEBVTT")
    store.put("call_a/capture/capture.json", b"{}")
    record = call_record(store, "call_a")
    assert record["state"] == "done" and record["close_reason"] == "frontend_closed"
    assert record["files"] == ["call.json", "call.vtt", "render.json"]  # no capture internals
    with pytest.raises(Exception, match="must not be the store"):
        StoredRecordings(tmp_path, store)
