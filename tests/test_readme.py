"""The README is a guide that works: its Python runs as written, it links every docs page, and
it stays short."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from caption_helpers import LINES, conversation

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
_ANCHORED = re.compile(r"\]\(([^)\s#]*)#([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as ``-``."""
    return {re.sub(r"[^\w\- ]", "", m.lower()).replace(" ", "-")
            for m in re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)}


def _python_blocks(text: str) -> list[str]:
    return _BLOCK.findall(text)


def test_the_readme_python_runs_as_written(tmp_path, monkeypatch, capsys):
    """Every ```python block of the README, run in a folder holding what it reads: the sample
    clip and an ``out/timeline.json`` (as ``aligner run`` leaves them)."""
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "the README shows the library"
    (tmp_path / "samples").mkdir()
    shutil.copy(ROOT / "samples" / "user1.wav", tmp_path / "samples" / "user1.wav")
    timeline = conversation(LINES[:2], barge_in=False)
    timeline.save(tmp_path / "out" / "timeline.json")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.strip().splitlines()
    # what the example prints: the sample clip's words with their times
    words = ast.literal_eval(printed[0])
    assert [w for w, _, _ in words] == ["Hi", "I", "would", "like", "to", "book", "a", "table",
                                        "for", "two", "people", "tonight"]
    assert all(0 <= a <= b <= 3.3 for _, a, b in words)
    assert all(b1 <= a2 for (_, _, b1), (_, a2, _) in zip(words, words[1:], strict=False))
    vtt = (tmp_path / "out" / "again" / "call.karaoke.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and "Northwind" in vtt and "<00:00:" in vtt


def test_the_readme_links_every_docs_page_and_every_link_resolves():
    text = README.read_text(encoding="utf-8")
    links = {m for m in _LINK.findall(text) if "://" not in m}
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert pages and pages <= links, f"docs pages not linked from the README: {pages - links}"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_docs_links_and_anchors_resolve():
    for page in [README, *DOCS.glob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for link in _LINK.findall(text):
            if "://" not in link:
                assert (page.parent / link).exists(), f"{page.name} links to missing {link}"
        for target, anchor in _ANCHORED.findall(text):
            if "://" not in target:
                assert anchor in _anchors(page.parent / target if target else page), (
                    f"{page.name} links to a missing heading {target}#{anchor}")


def test_the_readme_is_short_and_keeps_the_quick_start():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "pip install '.[speech]' && python -m aligner run" in text
    assert "bash scripts/test.sh" in text
