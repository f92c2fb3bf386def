"""``aligner-rhubarb`` against recorded outputs of the real Rhubarb Lip Sync 1.14.

Every case in ``tests/data/rhubarb/cases.json`` (the command lines of Rhubarb's After Effects,
Spine, Vegas, Blender and Godot integrations, each export format and flag, the error paths) is
run through ``python -m aligner.cli.rhubarb`` in a folder holding the same inputs, and its exit
code, stdout, stderr and written files are held to what Rhubarb printed: the same layout line
for line (numbers and shapes aside: the cues are ours), keys, value alphabets, durations,
``--machineReadable`` event types and fields, log lines and error messages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from aligner.audio import resample, wav_bytes
from aligner.speech.voices import synthesize as speak

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "rhubarb"
RECORDED = json.loads((DATA / "cases.json").read_text())
CASES = {c["name"]: c for c in RECORDED["cases"]}
LEVELS = ("Trace", "Debug", "Info", "Warn", "Error", "Fatal")
PRESTON_BLAIR = {"A": "MBP", "B": "etc", "C": "E", "D": "AI", "E": "O", "F": "U", "G": "FV",
                 "H": "L", "X": "rest"}
# the After Effects script's version check
AE_VERSION = re.compile(r"Rhubarb Lip Sync version ((\d+)\.(\d+).(\d+)(-[0-9A-Za-z-.]+)?)")
# the Vegas debug script's timed log line
VEGAS_LINE = re.compile(r"##(\w+)\[(\d*\.\d*)-(\d*\.\d*)\]: (.*)")


@pytest.fixture
def stage(tmp_path) -> Path:
    """A fresh folder with the recorded cases' inputs under their names."""
    d = tmp_path
    for name in ("user1.wav", "user3.wav"):
        shutil.copy(ROOT / "samples" / name, d / name)
    for name in ("espeak.wav", "silence.wav", "user1.txt", "user3.txt", "espeak.txt"):
        shutil.copy(DATA / name, d / name)
    return d


def run(stage: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-m", "aligner.cli.rhubarb", *args], cwd=stage,
                          env=env, capture_output=True, timeout=120)


def _opt(args: list[str], *names: str, default=None):
    for i, a in enumerate(args[:-1]):
        if a in names:
            return args[i + 1]
    return default


def _shapes(args: list[str]) -> set[str]:
    return set("ABCDEF") | set(_opt(args, "--extendedShapes", default="GHX").upper())


def _closed(shapes: set[str]) -> str:
    return "X" if "X" in shapes else "A"


def _layout(text: str, path: str | None) -> list[str]:
    """Lines with the sound file, times, frames and shapes blanked, repeats folded."""
    if path:
        text = text.replace(path, "PATH")
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        line = re.sub(r"\b\d+\.\d\d\b", "T", line)
        line = re.sub(r"(?<=[\">\t ])(?:[A-HX]|MBP|etc|AI|FV|rest|[EOUL])(?=[\"<\n])", "S", line)
        line = re.sub(r"^\d+ ", "N ", line)
        if not out or out[-1] != line:
            out.append(line)
    return out


def _cues(fmt: str, text: str) -> tuple[list[tuple[float, str]], float]:
    """(start, shape) per cue and the end time, from any export format."""
    if fmt == "tsv":
        rows = [line.split("\t") for line in text.splitlines()]
        return [(float(t), v) for t, v in rows[:-1]], float(rows[-1][0])
    if fmt == "json":
        doc = json.loads(text)
        cues = doc["mouthCues"]
        for a, b in zip(cues, cues[1:], strict=False):
            assert a["end"] == b["start"]
        return [(c["start"], c["value"]) for c in cues], doc["metadata"]["duration"]
    if fmt == "xml":
        root = ET.fromstring(text)
        cues = root.findall("./mouthCues/mouthCue")
        for a, b in zip(cues, cues[1:], strict=False):
            assert a.get("end") == b.get("start")
        return ([(float(c.get("start")), c.text) for c in cues],
                float(root.findtext("./metadata/duration")))
    rows = [line.split(" ") for line in text.splitlines()[1:]]
    return [(int(f), v) for f, v in rows], float(rows[-1][0])


def check_export(fmt: str, ours: str, theirs: str, args: list[str], sound: tuple[str, str]):
    """Our export has Rhubarb's layout, keys, alphabet, start, duration and closing shape."""
    shapes = _shapes(args)
    pb = "--datUsePrestonBlair" in args
    alphabet = {PRESTON_BLAIR[s] for s in shapes} if pb else shapes
    assert _layout(ours, sound[0]) == _layout(theirs, sound[1])
    if fmt == "json":
        a, b = json.loads(ours), json.loads(theirs)
        assert a.keys() == b.keys() and a["metadata"].keys() == b["metadata"].keys()
        assert {tuple(c) for c in a["mouthCues"]} == {tuple(c) for c in b["mouthCues"]}
        assert a["metadata"]["soundFile"] == sound[0]
    if fmt == "xml":
        assert ET.fromstring(ours).findtext("./metadata/soundFile") == sound[0]
    (got, end), (want, want_end) = _cues(fmt, ours), _cues(fmt, theirs)
    values = [v for _, v in got]
    assert set(values) <= alphabet and {v for _, v in want} <= alphabet
    assert all(a != b for a, b in zip(values, values[1:], strict=False)) or fmt == "dat"
    starts = [t for t, _ in got]
    assert starts == sorted(set(starts)) and starts[0] == want[0][0]  # 0.00, or frame 1
    if fmt != "dat":
        assert end == want_end  # the same audio: the same truncated duration
        assert starts[-1] < end or (not want and end == 0)
    else:  # the closed mouth one frame after the last cue's, or at the end's frame
        fps = float(_opt(args, "--datFrameRate", default="24"))
        duration = float(CASES_DURATION[sound[1]])
        frame = 1 + int(fps * duration)
        assert int(end) == (frame if frame != got[-2][0] else frame + 1)
    if fmt in ("tsv", "dat"):
        last = ours.splitlines()[-1].split("\t" if fmt == "tsv" else " ")[1]
        closed = _closed(shapes)
        assert last == (PRESTON_BLAIR[closed] if pb else closed)
        assert last == theirs.splitlines()[-1].split("\t" if fmt == "tsv" else " ")[1]


def _durations() -> dict[str, str]:
    """The recorded JSON duration of each input (the DAT check needs it)."""
    out = {}
    for c in RECORDED["cases"]:
        text = (DATA / c["name"] / "stdout").read_text()
        if _opt(c["args"], "-f", "--exportFormat", default="").lower() == "json" and text:
            doc = json.loads(text)
            out[doc["metadata"]["soundFile"]] = doc["metadata"]["duration"]
    return out


CASES_DURATION = _durations()


def check_machine(ours: str, theirs: str) -> None:
    """``--machineReadable``: JSON lines of the same event types, with the same fields."""
    a = [json.loads(line) for line in ours.splitlines()]
    b = [json.loads(line) for line in theirs.splitlines()]
    assert [e["type"] for e in a if e["type"] != "progress"] == \
        [e["type"] for e in b if e["type"] != "progress"]
    assert {e["type"] for e in a} == {e["type"] for e in b}
    for kind in {e["type"] for e in b}:
        assert {tuple(e) for e in a if e["type"] == kind} == {tuple(e) for e in b if e["type"] == kind}
    for e in a:
        assert set(e["log"]) == {"level", "message"} and e["log"]["level"] in LEVELS
    ours_lines, their_lines = ours.splitlines(), theirs.splitlines()
    for x, y in zip(a, b, strict=False):
        if x["type"] in ("start", "success") and x["type"] == y["type"]:
            assert ours_lines[a.index(x)] == their_lines[b.index(y)]  # byte for byte
    progress = [e for e in a if e["type"] == "progress"]
    if progress:
        values = [e["value"] for e in progress]
        assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0
        assert all(e["log"] == {"level": "Trace", "message": f"Progress: {int(e['value'] * 100)}%"}
                   for e in progress)
    assert [(e["log"]["level"], e["log"]["message"]) for e in a if e["type"] == "log"] == \
        [(e["log"]["level"], e["log"]["message"]) for e in b if e["type"] == "log"]
    for x, y in zip([e for e in a if e["type"] == "failure"], [e for e in b if e["type"] == "failure"],
                    strict=True):
        assert x["reason"].split("\n")[0] == y["reason"].split("\n")[0]
        assert x["log"] == {"level": "Fatal",
                            "message": f"Application terminating with error: {x['reason']}"}


def check_stderr(case: dict, ours: str, theirs: str, prog: str) -> None:
    args = case["args"]
    if "--machineReadable" in args and "-q" not in args and theirs.startswith("{"):
        return check_machine(ours, theirs)
    if not theirs:
        assert ours == ""
        return
    a, b = ours.splitlines(), theirs.splitlines()
    if b[0].startswith("Invalid command-line arguments."):  # TCLAP's usage error
        assert a[0].startswith("Invalid command-line arguments.")
        if case["name"] != "error-unknown-flag":  # TCLAP names the wrong argument there
            assert a[0] == b[0]
        assert a[1:] == [line.replace("rhubarb", prog) for line in b[1:]]
        return
    if b[0].startswith("Rhubarb Lip Sync 1.14.0"):  # -q: a line of context, then the error
        assert re.sub(r"1\.14\.0\S*", "V", a[0]) == re.sub(r"1\.14\.0\S*", "V", b[0])
        assert a[1:2] == b[1:2]
        return
    assert a[0] == b[0]  # "Generating lip sync data for ..." or "[Fatal] ..."
    fatal = [line for line in b if line.startswith("[Fatal]")]
    assert [line for line in a if line.startswith("[Fatal]")] == fatal
    if b[0].startswith("Generating"):
        assert ours.splitlines()[1].startswith("Progress: [")
        assert ours.endswith("Done.\n") == theirs.endswith("Done.\n")
        assert [x for x in a if x.startswith("[Info]")] == [x for x in b if x.startswith("[Info]")]


def check_log(ours: str, theirs: str, level: str, output: str | None) -> None:
    """``--logFile``: Rhubarb's line format, level filter, its Info entries, ``##`` lines."""
    line = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \d+ \[(\w+)\] (.*)")
    a = [line.fullmatch(x).groups() for x in ours.splitlines()]
    b = [line.fullmatch(x).groups() for x in theirs.splitlines()]
    assert all(LEVELS.index(lv) >= LEVELS.index(level) for lv, _ in a)
    assert [m for lv, m in a if lv == "Info"] == [m for lv, m in b if lv == "Info"]
    assert any(m.startswith("Command line: ") for _, m in a) == \
        any(m.startswith("Command line: ") for _, m in b)
    timed = [VEGAS_LINE.fullmatch(m).groups() for _, m in a if m.startswith("##")]
    assert {k for k, *_ in timed} <= {k for k, *_ in
                                      (VEGAS_LINE.fullmatch(m).groups() for _, m in b
                                       if m.startswith("##"))}
    if output is not None and b:  # the shapes logged are the cues written (Vegas regions)
        assert [(float(s), v) for k, s, _e, v in timed if k == "shape"] == _cues("xml", output)[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_recorded_rhubarb(stage, name):
    case = CASES[name]
    args = case["args"]
    got = run(stage, args)
    assert got.returncode == case["exit_code"], got.stderr.decode()
    here = DATA / name
    prog = "aligner-rhubarb"
    theirs_out, theirs_err = (here / "stdout").read_text(), (here / "stderr").read_text()
    ours_out, ours_err = got.stdout.decode(), got.stderr.decode()
    check_stderr(case, ours_err, theirs_err, prog)
    fmt = (_opt(args, "-f", "--exportFormat", default="tsv") or "tsv").lower()
    written = {f for f in ("out.json", "out.tsv", "out.xml", "output.json", "log.txt", "debug.log")
               if (stage / f).exists()}
    assert written == set(case["files"])
    output = _opt(args, "-o", "--output")
    inputs = [a for a in args if a.endswith(".wav")]
    sound = (str(stage / inputs[0]) if inputs else None,
             f"{RECORDED['cwd']}/{inputs[0]}" if inputs else None)
    if name.startswith(("version", "help", "combined")):
        assert (ours_out == "") == (theirs_out == "")
        if theirs_out.startswith("\nRhubarb Lip Sync version"):
            m = AE_VERSION.search(ours_out)
            assert m and int(m.group(2)) == 1 and int(m.group(3)) >= 9
            assert ours_out.startswith("\n") and ours_out.endswith("\n\n")
        else:
            flags = re.compile(r"(?<![\w-])--?[A-Za-z_]+")
            assert set(flags.findall(ours_out)) == set(flags.findall(theirs_out))
            assert [x for x in ours_out.splitlines() if x.endswith("usage:")] == \
                ["Short usage:", "Long usage:"]
            # the long usage table: lines padded to Rhubarb's two columns (20 + 2 + 56)
            assert {len(x) for x in ours_out.splitlines()[5:]} == \
                {len(x) for x in theirs_out.splitlines()[5:]}
        return
    if case["exit_code"] == 0 and output is None:
        check_export(fmt, ours_out, theirs_out, args, sound)
    else:
        assert ours_out == theirs_out == ""
    if output is not None and output in case["files"]:
        check_export(fmt, (stage / output).read_text(), (here / output).read_text(), args, sound)
    log = _opt(args, "--logFile")
    if log is not None:
        xml_out = (stage / output).read_text() if output and fmt == "xml" else None
        check_log((stage / log).read_text(), (here / log).read_text(),
                  (_opt(args, "--logLevel", default="Debug")).capitalize(), xml_out)


def test_plugin_style_invocation(stage):
    """The plugins' usual line: JSON to a file, dialog text, machine-readable progress."""
    got = run(stage, ["-f", "json", "-d", "user1.txt", "--extendedShapes", "GHX",
                      "--machineReadable", "-o", "out.json", "user1.wav"])
    assert got.returncode == 0 and got.stdout == b""
    events = [json.loads(x) for x in got.stderr.decode().splitlines()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "success"
    doc = json.loads((stage / "out.json").read_text())
    assert doc["metadata"] == {"soundFile": str(stage / "user1.wav"), "duration": 3.16}
    assert len(doc["mouthCues"]) > 10 and {"A", "X"} <= {c["value"] for c in doc["mouthCues"]}


_LIBRARY_CUES = """
import json, sys
from aligner.audio import load
from aligner.visemes import cues, estimate_phones, text_phones
from renderers.rhubarb import animation
pcm = load(sys.argv[1], 16000)
text = open(sys.argv[2]).read() if len(sys.argv) > 2 and sys.argv[2] != "-" else None
method = sys.argv[3] if len(sys.argv) > 3 else "acoustic"
phones = text_phones(pcm, 16000, text) if text else estimate_phones(pcm, 16000, method=method)
seconds = len(pcm) / 16000
print(json.dumps(animation(cues(phones, "rhubarb", end=seconds), seconds)))
"""


def _frames(cues: list[tuple[float, float, str]]) -> list[str]:
    """The shape of every 10 ms frame."""
    return [v for a, b, v in cues for _ in range(round(a * 100), round(b * 100))]


def test_cues_are_the_aligners(stage):
    """Without a dialog file the cues are the library's recognition, exactly (the phones of
    the recognised words, as Rhubarb's default recognizer; ``-r phonetic``: the fast phone
    model); with one they come
    from aligning the text: the library's cues on Rhubarb's grid, up to the few milliseconds by
    which espeak-ng's speech (the aligner's reference) varies from one process to the next."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    got, lib = {}, {}
    for key, args, lib_args in (("text", ["-d", "user1.txt"], ["user1.txt"]),
                                ("sound", [], ["-", "words"]),
                                ("phonetic", ["-r", "phonetic"], ["-", "model"])):
        out = run(stage, ["-f", "json", "-q", *args, "user1.wav"])
        got[key] = [(c["start"], c["end"], c["value"]) for c in json.loads(out.stdout)["mouthCues"]]
        done = subprocess.run([sys.executable, "-c", _LIBRARY_CUES, "user1.wav", *lib_args],
                              cwd=stage, env=env, capture_output=True, timeout=120, check=True)
        lib[key] = [(a / 100, b / 100, s) for a, b, s in json.loads(done.stdout)]
    assert got["sound"] == lib["sound"] and got["phonetic"] == lib["phonetic"]
    # espeak-ng's voice: the words path reads it with the phone model, as -r phonetic does;
    # on a neural voice the two recognizers differ
    assert got["sound"] == got["phonetic"]
    s = speak("Would you like me to send a reminder before your visit?", "hibari")
    (stage / "neural.wav").write_bytes(wav_bytes(resample(s.samples, s.sample_rate, 16000), 16000))
    neural = {}
    for key, args in (("sound", []), ("phonetic", ["-r", "phonetic"])):
        out = run(stage, ["-f", "json", "-q", *args, "neural.wav"])
        neural[key] = [(c["start"], c["end"], c["value"])
                       for c in json.loads(out.stdout)["mouthCues"]]
    done = subprocess.run([sys.executable, "-c", _LIBRARY_CUES, "neural.wav", "-", "words"],
                          cwd=stage, env=env, capture_output=True, timeout=120, check=True)
    assert neural["sound"] == [(a / 100, b / 100, v) for a, b, v in json.loads(done.stdout)]
    assert neural["sound"] != neural["phonetic"]
    ours, theirs, other = _frames(got["text"]), _frames(lib["text"]), _frames(lib["sound"])
    assert len(ours) == len(theirs) == len(other) == 316
    same = sum(x == y for x, y in zip(ours, theirs, strict=True)) / len(ours)
    unlike = sum(x == y for x, y in zip(ours, other, strict=True)) / len(ours)
    assert same >= 0.95 and unlike < same - 0.1


def test_failed_run_leaves_no_output_file(stage):
    got = run(stage, ["-f", "json", "-o", "never.json", "--machineReadable", "missing.wav"])
    assert got.returncode == 1 and not (stage / "never.json").exists()
    assert json.loads(got.stderr.decode().splitlines()[-1])["type"] == "failure"


def test_unwritable_output_fails_cleanly(stage):
    got = run(stage, ["-q", "-o", "no/such/folder/out.tsv", "user3.wav"])
    assert got.returncode == 1
    assert "[Fatal] Application terminating with error: Error processing file user3.wav." in \
        got.stderr.decode()


def test_threads_cap_numpys_blas():
    """``--threads`` (default 1) caps numpy's BLAS before numpy loads; the environment wins."""
    probe = ("import sys; from aligner.cli import blas_threads; blas_threads(int(sys.argv[1])); "
             "import numpy; from threadpoolctl import threadpool_info; "
             "print(max(i['num_threads'] for i in threadpool_info()))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    for n in (1, 2):
        done = subprocess.run([sys.executable, "-c", probe, str(n)], env=env, capture_output=True,
                              text=True, check=True, timeout=60)
        assert int(done.stdout) == n
    done = subprocess.run([sys.executable, "-c", probe, "1"], capture_output=True, text=True,
                          env=dict(env, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2"),
                          check=True, timeout=60)
    assert int(done.stdout) == 2


def test_console_script_points_at_main():
    from aligner.cli import rhubarb

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["aligner-rhubarb"].partition(":")
    assert module == rhubarb.__name__ and getattr(rhubarb, func) is rhubarb.main
    assert "raise SystemExit(main())" in Path(rhubarb.__file__).read_text()
