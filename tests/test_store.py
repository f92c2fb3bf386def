"""Recording stores (a folder, and a real S3-compatible server on loopback) and captures sent to
them in segments while a call runs."""

from __future__ import annotations

import pytest
from cluster_helpers import BUCKET, S3_ENV, S3Server, free_port

from aligner.service.store import FileStore, NotInStore, StoreError, open_store
from aligner.service.uploads import CaptureUpload, capture_key, fetch_capture
from aligner.wire.capture import CaptureWriter, read


@pytest.fixture
def s3(tmp_path, monkeypatch):
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    server = S3Server(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri())
    server = request.getfixturevalue("s3")
    return open_store(f"s3://{BUCKET}/prod", server.endpoint)


def test_objects_round_trip_once_list_and_delete(store):
    assert store.put("call_a/call.json", b'{"a": 1}')
    assert store.get("call_a/call.json") == b'{"a": 1}'
    assert store.put("call_a/call.vtt", b"WEBVTT", once=True)
    assert not store.put("call_a/call.vtt", b"other", once=True)  # written once
    assert store.get("call_a/call.vtt") == b"WEBVTT"
    store.put("call_b/capture/capture.json", b"{}")
    assert store.list("call_a/") == ["call_a/call.json", "call_a/call.vtt"]
    assert store.list("call_b/") == ["call_b/capture/capture.json"]
    assert store.folders() == ["call_a", "call_b"]
    with pytest.raises(NotInStore):
        store.get("call_a/nope.txt")
    assert store.get_or_none("call_a/nope.txt") is None
    store.delete(["call_a/call.vtt", "call_a/absent"])
    assert store.list("call_a/") == ["call_a/call.json"]
    for bad in ("../etc/passwd", "/abs", "a//b", "call_a/.hidden", ""):
        with pytest.raises(StoreError):
            store.put(bad, b"x")


def test_a_file_store_is_the_recordings_folder_layout(tmp_path):
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, FileStore) and store.url == tmp_path.resolve().as_uri()
    store.put("call_a/call.json", b"{}")
    assert (tmp_path / "call_a" / "call.json").read_bytes() == b"{}"
    assert open_store(str(tmp_path)).root == tmp_path.resolve()
    for bad in ("ftp://x/y", "s3://", "file://otherhost/x"):
        with pytest.raises(StoreError):
            open_store(bad)


def test_an_unreachable_s3_store_raises_a_store_error(monkeypatch):
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    store = open_store(f"s3://{BUCKET}/x", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="cannot write"):
        store.put("call_a/call.json", b"{}")


def _capture(folder):
    return CaptureWriter(folder, {"call_id": "call_a", "audio_encoding": "s16le",
                                  "sample_rate": 16000})


def test_segments_rebuild_what_a_dead_instance_had_sent(store, tmp_path):
    local = tmp_path / "spool" / "capture"
    writer = _capture(local)
    upload = CaptureUpload(store, "call_a", local)
    writer.write(0.1, "out", b"\x01\x00" * 100)
    writer.write(0.2, "in", b"\x02\x00" * 300)
    assert upload.step() > 0
    assert upload.step() == 0  # nothing new: no segment
    writer.write(0.3, "in", '{"event_type":"update","transcript":[]}')
    writer.write(0.4, "in", b"\x03\x00" * 50)
    upload.step()
    writer.write(0.5, "in", b"\x04\x00" * 50)  # never sent: the instance dies here
    assert len(store.list(capture_key("call_a", "segments/"))) == 2
    rebuilt = read(fetch_capture(store, "call_a", tmp_path / "fetched"))
    assert [f.t for f in rebuilt.frames()] == [0.1, 0.2, 0.3, 0.4]
    assert [f.payload for f in rebuilt.frames()] == [f.payload for f in read(local).frames()][:4]


def test_a_finished_capture_goes_up_whole_and_its_segments_go(store, tmp_path):
    local = tmp_path / "spool" / "capture"
    writer = _capture(local)
    upload = CaptureUpload(store, "call_a", local)
    writer.write(0.1, "in", b"\x02\x00" * 300)
    upload.step()
    writer.write(0.2, "in", b"\x03\x00" * 30)
    writer.write_close(0.3, 1000, "bye", "client")
    writer.close()
    upload.complete()
    keys = store.list(capture_key("call_a"))
    assert not [k for k in keys if "/segments/" in k]
    assert {"capture.json", "events.jsonl", "agent.raw"} <= {k.rsplit("/", 1)[1] for k in keys}
    rebuilt = read(fetch_capture(store, "call_a", tmp_path / "fetched"))
    assert rebuilt.close.reason == "bye" and len(rebuilt) == 2
    assert rebuilt.info["frames"] == 2  # the header as it was at the end


def test_upload_lag_grows_while_the_store_is_away_and_nothing_is_lost(tmp_path, s3):
    store = open_store(f"s3://{BUCKET}/lag", s3.endpoint)
    local = tmp_path / "spool" / "capture"
    writer = _capture(local)
    upload = CaptureUpload(store, "call_a", local)
    writer.write(0.1, "in", b"\x02\x00" * 300)
    upload.step()
    s3.stop()  # the store goes away mid-call
    writer.write(0.2, "in", b"\x03\x00" * 300)
    with pytest.raises(StoreError):
        upload.step()
    assert upload.lag() > 0
    restarted = S3Server(tmp_path)
    restarted.port, restarted.endpoint = s3.port, s3.endpoint
    restarted.start()  # moto keeps nothing: the same bucket, empty
    try:
        writer.write(0.3, "in", b"\x04\x00" * 300)
        writer.close()
        upload.complete()  # whole files: everything, including what the dead store lost
        assert upload.lag() == 0
        rebuilt = read(fetch_capture(store, "call_a", tmp_path / "fetched"))
        assert [f.t for f in rebuilt.frames()] == [0.1, 0.2, 0.3]
    finally:
        restarted.stop()
