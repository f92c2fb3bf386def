"""``aligner serve`` as a user runs it: help, bad options, start, serve, SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request

from aligner.cli import main


def test_help_has_examples(capsys):
    try:
        main(["serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "--upstream" in out and "examples:" in out and "enable_visemes=true" in out


def test_bad_options_are_one_line_errors(capsys, tmp_path):
    for argv, needle in ((["--render", "nope"], "unknown renderer 'nope'"),
                         (["--viseme-set", "klingon"], "unknown viseme set"),
                         (["--upstream", "ftp://x"], "http(s)://"),
                         (["--port", "70000"], "outside 0-65535")):
        assert main(["serve", "--recordings", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "aligner", "serve", "--port", "0",
                             "--recordings", str(tmp_path / "rec"), "--align-workers", "1"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
