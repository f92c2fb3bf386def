"""Where the service keeps its voice profiles (``aligner serve --voice-profiles``, ``aligner worker
--voice-profiles``): one :class:`aligner.speech.adaptation.VoiceProfile` per agent id, that a
call's live events and its recording's timeline start from, and that what each call learned is
added to when it ends. A call counts once: a merge names its call (``source``), and one from a
call the profile already holds (the recording's after the live events', a render retried or run
again for another renderer) adds nothing.

- a **folder** (:class:`FolderProfiles`): one JSON file per voice, for one machine: the service's
  alignment and render processes share it through a file lock;
- **Redis** (:class:`RedisProfiles`, a ``redis://`` URL): every instance and render worker of a
  cluster learns each agent's voice together. A profile is one key, ``aligner:voice:{key}``, the
  same JSON as the file; merging is an optimistic transaction (``WATCH``/``MULTI``), retried when
  another process merged in between, so calls of one voice ending at once anywhere all count.

Neither ``load`` nor ``merge`` raises: an unreadable or unreachable profile is an empty one (the
aligner then runs unadapted, as for a new voice), and a merge that cannot be stored is logged and
counted (``failed``; that call's learning is lost, the profile keeps what it had); the call itself
goes on either way.

>>> import tempfile
>>> store = open_profiles(tempfile.mkdtemp())
>>> store.load("agent_7").clips
0
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import AlignerError
from ..logs import fields
from ..speech.adaptation import VoiceProfile, merge_file, profile_path

__all__ = ["FolderProfiles", "RedisProfiles", "open_profiles"]

log = logging.getLogger(__name__)

_KEY = "aligner:voice:"
_RETRIES = 50  # merges that lost a race in a row before one gives up


@functools.lru_cache(maxsize=16)
def open_profiles(location: str | Path) -> FolderProfiles | RedisProfiles:
    """The profile store at ``location``: a ``redis://`` (``rediss://``, ``unix://``) URL, or a
    folder (made if missing). One store per location in a process (a Redis store holds a
    connection pool)."""
    text = str(location)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisProfiles(text)
    return FolderProfiles(text)


class FolderProfiles:
    """A folder of voice profiles shared by the processes of one machine. Merging re-reads the
    file under an exclusive lock, adds the statistics and writes it back atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlignerError(f"voice profiles: cannot use the folder {folder}: {exc}") from exc
        self.failed = 0

    def path(self, key: str) -> Path:
        """The file of voice ``key``."""
        return profile_path(self.folder, key)

    def load(self, key: str) -> VoiceProfile:
        """Voice ``key``'s profile (empty if it has none yet, or if its file is unreadable)."""
        try:
            return VoiceProfile.load(self.path(key), key)
        except (OSError, ValueError) as exc:
            log.warning("voice profile unreadable", extra=fields(voice=key, error=str(exc)))
            return VoiceProfile(key)

    def merge(self, key: str, stats: dict[str, Any] | None, clips: int = 1,
              source: str | None = None) -> VoiceProfile:
        """Add one call's statistics (of ``clips`` clips) to voice ``key``'s profile, unless it
        already holds call ``source``'s; returns the profile as stored."""
        try:
            profile, added = merge_file(self.path(key), stats, clips, source,
                                        read=lambda _: self.load(key))
            if not added:
                _not_added(profile, stats, source)
            return profile
        except OSError as exc:
            self.failed += 1
            log.error("voice profile not saved", extra=fields(voice=key, error=str(exc)))
            return self.load(key)


class RedisProfiles:
    """Voice profiles in Redis, shared by every process that reaches it."""

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise AlignerError("voice profiles in Redis need the cluster extra: "
                               "pip install 'aligner[cluster]'") from exc
        self.url = url
        self._redis = redis
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.failed = 0

    def key(self, voice: str) -> str:
        """The Redis key of voice ``voice``."""
        return _KEY + voice

    def load(self, key: str) -> VoiceProfile:
        """Voice ``key``'s profile (empty if it has none yet, is unreadable or Redis is away)."""
        try:
            raw = self.client.get(self.key(key))
        except self._redis.RedisError as exc:
            log.warning("voice profile unavailable", extra=fields(voice=key, error=str(exc)))
            return VoiceProfile(key)
        return _parse(raw, key)

    def merge(self, key: str, stats: dict[str, Any] | None, clips: int = 1,
              source: str | None = None) -> VoiceProfile:
        """Add one call's statistics (of ``clips`` clips) to voice ``key``'s profile, unless it
        already holds call ``source``'s; returns the profile as stored."""
        name = self.key(key)
        try:
            with self.client.pipeline() as pipe:
                for _ in range(_RETRIES):
                    try:
                        pipe.watch(name)
                        profile = _parse(pipe.get(name), key)
                        if not profile.add(stats, clips, source):
                            pipe.unwatch()
                            _not_added(profile, stats, source)
                            return profile
                        pipe.multi()
                        pipe.set(name, json.dumps(profile.to_dict()))
                        pipe.execute()
                        return profile
                    except self._redis.WatchError:
                        continue  # another process merged first: read its result again
                raise self._redis.RedisError(f"{_RETRIES} merges in a row lost the race")
        except self._redis.RedisError as exc:
            self.failed += 1
            log.error("voice profile not saved", extra=fields(voice=key, error=str(exc)))
            return self.load(key)


def _parse(raw: bytes | None, key: str) -> VoiceProfile:
    if raw is None:
        return VoiceProfile(key)
    try:
        return VoiceProfile.from_dict(json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("voice profile unreadable", extra=fields(voice=key, error=str(exc)))
        return VoiceProfile(key)


def _not_added(profile: VoiceProfile, stats: dict[str, Any] | None, source: str | None) -> None:
    if stats is not None:  # nothing learned is nothing to say
        log.info("voice profile holds the call already", extra=fields(voice=profile.key,
                                                                       call_id=source))
