"""Helpers of the cluster tests and benchmark: a real ``redis-server`` and a real S3-compatible
server (moto's standalone server) on free loopback ports, and ``aligner serve --redis`` /
``aligner worker`` as separate processes (so a test can ``kill -9`` them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BUCKET = "calls"
SECRET = "cluster-test-secret"
#: What opens an instance's /calls: its --secret, as no API key is given.
RECORDINGS = {"Authorization": f"Bearer {SECRET}"}
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence; :meth:`stop` and :meth:`start`
    again on the same port (a Redis outage)."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (scripts/test.sh installs Debian's "
                               "redis-server package)")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class S3Server:
    """moto's standalone S3-compatible server on a free loopback port, with a bucket."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "moto.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc: subprocess.Popen | None = None

    def start(self, versioned: bool = True) -> S3Server:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                      "-p", str(self.port)], stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **S3_ENV})
        _wait_port(self.port, self.proc)
        s3 = self.client()
        s3.create_bucket(Bucket=BUCKET)
        if versioned:  # every write of an object is kept: tests count them
            s3.put_bucket_versioning(Bucket=BUCKET,
                                     VersioningConfiguration={"Status": "Enabled"})
        return self

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def versions(self, prefix: str) -> dict[str, int]:
        """How many times each key under ``prefix`` was written (versions kept)."""
        counts: dict[str, int] = {}
        for page in self.client().get_paginator("list_object_versions").paginate(
                Bucket=BUCKET, Prefix=prefix):
            for v in page.get("Versions", ()):
                counts[v["Key"]] = counts.get(v["Key"], 0) + 1
        return counts

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class Process:
    """A CLI process (``aligner serve`` / ``aligner worker``) with its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "aligner", "-v", *args],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **S3_ENV, **(env or {})})
        self.pid = self.proc.pid
        self.base = ""

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        """The first match of ``pattern`` in the output (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log_path.read_text())
            if m:
                return m
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[3]} exited {self.proc.returncode}:\n"
                                   + self.log_path.read_text()[-3000:])
            time.sleep(0.1)
        raise RuntimeError(f"no {pattern!r} in {self.log_path}:\n"
                           + self.log_path.read_text()[-3000:])

    def output(self) -> str:
        return self.log_path.read_text()

    def kill9(self) -> None:
        """``kill -9``: no cleanup at all."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def start_instance(folder: Path, name: str, redis: str, store: str, endpoint: str | None,
                   upstream: str, renderers: str = "vtt,visemes",
                   extra: tuple[str, ...] = ()) -> Process:
    """``aligner serve --redis`` on a free port; ``.base`` is its URL once it listens."""
    args = ["serve", "--port", "0", "--upstream", upstream, "--redis", redis, "--store", store,
            "--spool", str(folder / f"spool-{name}"), "--secret", SECRET, "--instance-id", name,
            "--align-workers", "1", "--render", renderers, *extra]
    if endpoint:
        args += ["--store-endpoint", endpoint]
    proc = Process(args, folder / f"{name}.log")
    proc.base = "http://127.0.0.1:" + proc.wait_for(r"listening on http://127\.0\.0\.1:(\d+)/")[1]
    return proc


def start_worker(folder: Path, name: str, redis: str, store: str, endpoint: str | None,
                 extra: tuple[str, ...] = ()) -> Process:
    """``aligner worker`` (sweeping every second, so a dead worker's job is soon run again)."""
    args = ["worker", "--redis", redis, "--store", store, "--id", name, "--sweep", "1", *extra]
    if endpoint:
        args += ["--store-endpoint", endpoint]
    proc = Process(args, folder / f"{name}.log")
    proc.wait_for(r"aligner worker: .* rendering jobs")
    return proc


async def wait_ready(base: str, timeout: float = 120.0) -> None:
    """Until the instance at ``base`` has loaded its aligner (its first alignment is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/healthz",
                                                                 timeout=5) as resp:
            if b'"aligner_ready": true' in resp.read():
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{base} never loaded its aligner")
