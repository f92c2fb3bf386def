"""``aligner render CAPTURE|timeline.json --to NAME[,NAME...] --out DIR``: run renderers."""

from __future__ import annotations

import argparse

HELP = "render a capture or timeline.json with one or more renderers (srt, vtt, ass, ...)"
EXAMPLES = """examples:
  aligner render out/timeline.json --to srt,vtt --out out
  aligner render out/capture --to all --out subs            # a capture: builds its timeline first
  aligner render out --to vtt-karaoke --out out             # a folder holding timeline.json
  aligner render call.json --to srt --option max_cps=17 --option max_chars_per_line=37
  aligner renderers                                         # what --to accepts

Options (--option KEY=VALUE) go to every renderer; caption renderers take the CaptionRules
fields: max_chars_per_line, max_lines, min_duration, max_duration, max_cps, min_gap, ...
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a timeline.json file, a folder holding one, or a capture "
                                       "directory")
    parser.add_argument("--to", required=True, metavar="NAME[,NAME...]",
                        help="renderer names, comma separated, or 'all' (see: aligner renderers)")
    parser.add_argument("--out", default="out", metavar="DIR", help="output folder (default out)")
    parser.add_argument("--stem", default="call", help="output file name stem (default call)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="renderer option, repeatable")
    parser.add_argument("--progress", choices=("auto", "yes", "no"), default="auto",
                        help="progress bars on stderr while the timeline is built and long "
                             "renderers run (default auto: when stderr is a terminal)")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import renderers
    from aligner.errors import AlignerError, CaptureError, RendererError
    from aligner.progress import session_progress
    from aligner.timeline import Timeline

    names = [n.strip() for n in args.to.split(",") if n.strip()]
    if names == ["all"]:
        names = [n for n, d in renderers.available().items() if not d.startswith("(broken")]
    if not names:
        raise RendererError("--to names no renderer")
    classes = {name: renderers.get(name) for name in names}  # unknown names fail before work
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RendererError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()

    source = Path(args.source)
    if source.is_dir() and not (source / "capture.json").exists() \
            and (source / "timeline.json").is_file():
        source = source / "timeline.json"  # an output folder of aligner run / aligner timeline
    base = source.parent
    if source.is_dir():
        from aligner.session import build_timeline

        print(f"aligner render: building the timeline of {source}", file=sys.stderr)
        timeline = build_timeline(source, progress=session_progress("timeline", args.progress))
        base = source
    elif source.is_file():
        try:
            timeline = Timeline.load(source)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CaptureError(f"cannot read {source} as timeline.json: {exc}") from exc
    else:
        raise CaptureError(f"no such capture or timeline file: {source}")

    failed = 0
    for k, (name, cls) in enumerate(classes.items(), 1):
        print(f"aligner render: [{k}/{len(classes)}] {name}", file=sys.stderr)
        try:
            opts = options if "progress" in options else {**options, "progress": args.progress}
            paths = cls(**opts).render(timeline, args.out, stem=args.stem, base=base)
        except (AlignerError, TypeError, ValueError, OSError) as exc:
            failed += 1
            print(f"aligner render: {name} failed: {exc}", file=sys.stderr)
            continue
        for p in paths:
            print(p)
    if failed:
        raise RendererError(f"{failed} of {len(classes)} renderers failed")
    return 0
