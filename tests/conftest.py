"""Fixtures shared by test modules: the cluster tests' servers (Redis, an S3 server) and the
processes they start (fixtures here are found by every test module)."""

from __future__ import annotations

import pytest
from cluster_helpers import S3_ENV, RedisServer, S3Server


@pytest.fixture
def servers(tmp_path, monkeypatch):
    """(redis, s3) servers on free loopback ports, stopped after the test."""
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    redis, s3 = RedisServer(tmp_path).start(), S3Server(tmp_path).start()
    yield redis, s3
    redis.stop()
    s3.stop()


@pytest.fixture
def procs():
    """Processes a test starts; stopped (SIGTERM) after it, whatever happened."""
    started: list = []
    yield started
    for proc in started:
        proc.stop()
