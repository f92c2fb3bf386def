"""Progress of long work: one bar mechanism (aligner.progress) for align, render and mp4."""

from __future__ import annotations

import pytest
from service_helpers import SAMPLES
from session_helpers import AGENT_TEXT, SR, USER_TEXT, Speech, write_capture

from aligner import align
from aligner.cli import main
from aligner.progress import reporter, session_progress


def test_bar_on_stderr_ends_with_a_newline(capfd):
    report = reporter("job", 10.0, True)
    for done in (2.5, 5.0, 10.0):
        report(done, "working")
    err = capfd.readouterr().err
    assert err.count("\r") == 3 and "job [" in err and " 25%" in err and "100%" in err
    assert "working" in err and err.endswith("\n")
    quiet = reporter("job", 10.0, "auto")  # stderr is not a terminal under pytest
    quiet(10.0)
    assert capfd.readouterr().err == ""
    assert session_progress("timeline", "no") is None


def test_align_reports_its_stages():
    seen = []
    pcm = Speech(USER_TEXT, "en-us").pcm
    align(pcm, SR, USER_TEXT, progress=lambda done, note="": seen.append((done, note)))
    fractions = [d for d, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1.0
    notes = " ".join(n for _, n in seen)
    assert "pronouncing 6 words" in notes and "timing 6 words" in notes and "aligned" in notes


@pytest.mark.parametrize("flag, shown", [("yes", True), ("auto", False), ("no", False)])
def test_align_command_bar(tmp_path, capfd, flag, shown):
    clip = SAMPLES / "user1.wav"  # a recorded user turn and what it says
    text = "Hi, I would like to book a table for two people tonight."
    assert main(["align", str(clip), "--text", text, "--progress", flag,
                 "--out", str(tmp_path / "a.json")]) == 0
    err = capfd.readouterr().err
    assert ("align [" in err and "100%" in err) is shown, err


def test_render_command_bars_for_the_timeline_and_long_renderers(tmp_path, capfd):
    write_capture(tmp_path / "cap", Speech(AGENT_TEXT, "en-us"), Speech(USER_TEXT, "en-us+f3"))
    assert main(["render", str(tmp_path / "cap"), "--to", "srt,mp4", "--out", str(tmp_path / "o"),
                 "--option", "size=320x180", "--progress", "yes"]) == 0
    err = capfd.readouterr().err
    assert "timeline [" in err and "mp4 [" in err and err.count("100%") >= 2
    assert main(["render", str(tmp_path / "cap"), "--to", "srt", "--out", str(tmp_path / "p")]) == 0
    assert "[" not in capfd.readouterr().err.replace("[1/1]", "")  # quiet off a terminal
