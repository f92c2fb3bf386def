"""The service's voice profile stores: a folder, and a real Redis on loopback shared by processes."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from cluster_helpers import RedisServer, free_port

from aligner.audio import resample
from aligner.service.profiles import FolderProfiles, RedisProfiles, open_profiles
from aligner.speech.adaptation import MAX_SOURCES, VoiceProfile
from aligner.speech.alignment import time_tokens
from aligner.speech.pronounce import token_phones
from aligner.speech.text import tokenize
from aligner.speech.voices import synthesize

TEXT = "Your appointment is confirmed for Tuesday morning at nine."


@pytest.fixture(scope="module")
def stats():
    """Adaptation statistics of one clip of real (neural) speech."""
    s = synthesize(TEXT, "hibari")
    pcm = resample(s.samples, s.sample_rate, 16000)
    tokens = tokenize(TEXT)
    done = time_tokens(pcm, 16000, TEXT, tokens, [token_phones(t.word) for t in tokens],
                       backend="acoustic", learn=True)
    assert done.stats is not None and done.stats["frames"] > 100
    return done.stats


@pytest.fixture(params=["folder", "redis"])
def location(request, tmp_path):
    if request.param == "folder":
        yield str(tmp_path / "voices")
        return
    server = RedisServer(tmp_path).start()
    yield server.url
    server.stop()


def _merge_many(location: str, stats: dict, times: int) -> None:
    store = open_profiles(location)
    for _ in range(times):
        store.merge("agent-7", stats)


def test_calls_ending_at_once_in_many_processes_all_count(location, stats):
    """Four processes each add five calls to one voice at once: the profile holds all twenty
    (a merge that read the profile before another process wrote it would lose that one)."""
    with ProcessPoolExecutor(4) as pool:
        for f in [pool.submit(_merge_many, location, stats, 5) for _ in range(4)]:
            f.result()
    profile = open_profiles(location).load("agent-7")
    assert profile.clips == 20 and profile.frames == 20 * stats["frames"]
    assert np.allclose(profile.stats["G"], 20 * stats["G"])
    assert np.allclose(profile.stats["k"], 20 * stats["k"])
    assert profile.transform is not None  # enough speech to adapt with
    assert open_profiles(location).load("agent-8").clips == 0  # one profile per voice


def test_what_a_call_learned_is_what_is_merged(location, stats):
    store = open_profiles(location)
    store.merge("agent-7", stats)
    call = store.load("agent-7")
    before = call.stats
    assert call.learned_since(before) is None  # nothing new yet
    call.learn(stats)
    call.learn(stats)
    learned = call.learned_since(before)
    assert learned["frames"] == 2 * stats["frames"]
    assert np.allclose(learned["G"], 2 * stats["G"])
    assert store.merge("agent-7", learned, clips=2).clips == 3


def test_a_call_teaches_its_voice_once(location, stats):
    """A call learned from twice (its live events and its recording, a render retried or run
    again for another renderer) adds to the profile once: the first merge under its id."""
    store = open_profiles(location)
    assert store.merge("agent-7", stats, source="call-1").clips == 1
    again = store.merge("agent-7", stats, source="call-1")
    assert again.clips == 1 and again.frames == stats["frames"]
    assert store.merge("agent-7", stats, source="call-2").clips == 2
    stored = store.load("agent-7")
    assert stored.frames == 2 * stats["frames"] and stored.sources == ["call-1", "call-2"]
    assert np.allclose(stored.stats["G"], 2 * stats["G"])
    assert store.merge("agent-7", stats).clips == 3  # no id: always added


def test_a_profile_remembers_its_latest_calls_only(stats):
    profile = VoiceProfile("agent-7")
    for i in range(MAX_SOURCES + 5):
        profile.learn({"G": stats["G"], "k": stats["k"], "frames": 1}, source=f"call-{i}")
    kept = VoiceProfile.from_dict(json.loads(json.dumps(profile.to_dict()))).sources
    assert len(kept) == MAX_SOURCES and kept[-1] == f"call-{MAX_SOURCES + 4}"
    assert "call-4" not in kept and "call-5" in kept


def test_an_unreadable_profile_is_a_new_voice_and_is_replaced(location, stats):
    store = open_profiles(location)
    if isinstance(store, RedisProfiles):
        store.client.set(store.key("agent-7"), b"{not json")
    else:
        store.path("agent-7").write_text(json.dumps({"version": 99}))
    assert store.load("agent-7").clips == 0
    assert store.merge("agent-7", stats).clips == 1
    assert store.load("agent-7").frames == stats["frames"]


def test_redis_away_leaves_the_call_unadapted_and_counts_the_lost_merge(stats):
    store = RedisProfiles(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert store.load("agent-7").clips == 0
    assert store.merge("agent-7", stats).clips == 0
    assert store.failed == 1


def test_open_profiles_picks_the_store_by_location(tmp_path):
    assert isinstance(open_profiles(str(tmp_path / "v")), FolderProfiles)
    assert isinstance(open_profiles(f"redis://127.0.0.1:{free_port()}/0"), RedisProfiles)
    assert open_profiles(str(tmp_path / "v")) is open_profiles(str(tmp_path / "v"))
    assert VoiceProfile.load(tmp_path / "v" / "missing.json").clips == 0
