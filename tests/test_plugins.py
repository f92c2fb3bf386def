"""The renderer plugin interface: a throwaway renderer installed through an entry point, used from
the CLI (``aligner renderers``, ``aligner render``), plus the render command's own behaviour."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from caption_helpers import spoken

import renderers
from aligner.errors import RendererError
from aligner.timeline import Timeline

PLUGIN = '''
from renderers import Renderer


class Upper(Renderer):
    name = "upper"
    extensions = (".upper.txt",)
    description = "heard words in capitals (test plugin)"

    def render_to(self, timeline, fp, *, base=None):
        words = [w.word.upper() for u in timeline.utterances for w in u.heard_words]
        fp.write(" ".join(words).encode("utf-8"))
'''


def _install(site: Path) -> Path:
    """A plugin distribution on a path entry: a module plus its .dist-info with entry points."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "upperplug.py").write_text(PLUGIN)
    info = site / "upperplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: upperplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[aligner.renderers]\nupper = upperplug:Upper\nbroken = upperplug_missing:Nope\n")
    return site


def _aligner(*args: str, site: Path | None = None, cwd: Path | None = None):
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "aligner", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def _timeline(tmp_path: Path) -> Path:
    tl = Timeline(utterances=(spoken("agent", "Hello from the plugin test.", 0.5),), duration=3.0)
    return tl.save(tmp_path / "timeline.json")


def test_plugin_through_entry_point_is_listed_and_renders_from_the_cli(tmp_path):
    site = _install(tmp_path / "site")
    listing = _aligner("renderers", site=site)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert "heard words in capitals (test plugin)" in lines["upper"]
    assert "broken" in lines["broken"] and "srt" in lines  # a broken plugin is listed, not fatal
    out = tmp_path / "out"
    done = _aligner("render", str(_timeline(tmp_path)), "--to", "upper,srt", "--out", str(out),
                    site=site)
    assert done.returncode == 0, done.stderr
    assert (out / "call.upper.txt").read_text() == "HELLO FROM THE PLUGIN TEST"
    assert "Hello from the plugin test." in (out / "call.srt").read_text()
    assert "[1/2] upper" in done.stderr  # progress on stderr


def test_without_the_plugin_its_name_is_an_error(tmp_path):
    done = _aligner("render", str(_timeline(tmp_path)), "--to", "upper", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "unknown renderer 'upper'" in done.stderr
    assert "srt" in done.stderr and "Traceback" not in done.stderr


def test_registry_reads_entry_points_lazily(tmp_path, monkeypatch):
    site = _install(tmp_path / "site")
    with pytest.raises(RendererError):
        renderers.get("upper")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    cls = renderers.get("upper")
    assert issubclass(cls, renderers.Renderer) and cls.name == "upper"
    assert renderers.available()["upper"] == cls.description
    with pytest.raises(RendererError, match="failed to load"):
        renderers.get("broken")


def test_render_all_and_bad_inputs(tmp_path):
    out = tmp_path / "out"
    done = _aligner("render", str(_timeline(tmp_path)), "--to", "all", "--out", str(out),
                    "--option", "max_cps=17")
    assert done.returncode == 0, done.stderr
    names = {p.name for p in out.iterdir()}
    assert {"call.srt", "call.vtt", "call.karaoke.vtt", "call.ass", "call.ttml", "call.TextGrid",
            "call.words.json"} <= names
    again = _aligner("render", str(tmp_path), "--to", "vtt", "--out", str(tmp_path / "o2"))
    assert again.returncode == 0 and (tmp_path / "o2" / "call.vtt").exists()  # folder source
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (["render", str(bad), "--to", "srt"], ["render", str(tmp_path / "nope"), "--to",
                 "srt"], ["render", str(bad), "--to", "srt", "--option", "novalue"]):
        res = _aligner(*args, "--out", str(out))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("aligner render: error:")


def test_help_has_examples():
    for cmd in ("render", "renderers"):
        res = _aligner(cmd, "--help")
        assert res.returncode == 0 and "examples:" in res.stdout


def test_render_a_capture_directory(tmp_path):
    from aligner.audio import resample
    from aligner.speech.synthesis import SAMPLE_RATE, synthesize
    from aligner.wire.capture import CaptureWriter

    cap = tmp_path / "capture"
    text = "Your order ships on Thursday."
    s = synthesize(text)
    pcm = resample(s.samples, SAMPLE_RATE, 16000)
    with CaptureWriter(cap, {"audio_encoding": "s16le", "sample_rate": 16000,
                             "enable_audio_alignment": True}) as w:
        frame = {"event_type": "audio", "audio": base64.b64encode(pcm.tobytes()).decode(),
                 "text": text}
        w.write(0.3, "in", json.dumps(frame))
    out = tmp_path / "out"
    done = _aligner("render", str(cap), "--to", "srt,json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "call.words.json").read_text())
    words = [w["word"] for seg in doc["segments"] for w in seg["words"]]
    assert words == text.split()
    assert "Your order ships on Thursday." in (out / "call.srt").read_text()


def test_unknown_options_and_bad_values_are_refused_by_name(tmp_path):
    tl = str(_timeline(tmp_path))
    # a typo was silently ignored (exit 0); a bad value failed without naming the option
    typo = _aligner("render", tl, "--to", "srt", "--option", "max_cp=5", "--out", str(tmp_path))
    assert typo.returncode == 2
    assert "max_cp" in typo.stderr and "valid options:" in typo.stderr and "max_cps" in typo.stderr
    bad = _aligner("render", tl, "--to", "srt", "--option", "max_cps=abc", "--out", str(tmp_path))
    assert bad.returncode == 2 and "max_cps='abc'" in bad.stderr and "a number" in bad.stderr
    assert len(typo.stderr.strip().splitlines()) == len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "call.srt").exists()  # refused before any work
    # each renderer takes its own: srt the caption rules, visemes its motion
    ok = _aligner("render", tl, "--to", "srt,visemes", "--option", "max_cps=17", "--option",
                  "lead=0.05", "--option", "retime=no", "--out", str(tmp_path / "o"))
    assert ok.returncode == 0, ok.stderr
    for make, message in ((lambda: renderers.get("srt")(max_cp=5), "valid options"),
                          (lambda: renderers.get("mp4")(fps="abc"), "fps='abc'"),
                          (lambda: renderers.get("visemes")(lead="soon"), "lead='soon'"),
                          (lambda: renderers.get("ass")(karaoke="kff"), "one of kf, k, none"),
                          (lambda: renderers.get("srt")(max_lines=0), "max_lines")):
        with pytest.raises(RendererError, match=message):
            make()
    assert renderers.get("visemes")(retime="no").options["retime"] is False
