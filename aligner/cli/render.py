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

backfill on a cluster (docs/service.md): queue renders for `aligner worker`, with a progress bar
  aligner render --queue redis://redis.internal:6379/0 s3://calls/prod --to vtt,mp4
  aligner render --queue redis://127.0.0.1:6379/0 ./recordings --store s3://calls/prod --to vtt

Options (--option KEY=VALUE) go to every renderer that takes them; caption renderers take the
CaptionRules fields: max_chars_per_line, max_lines, min_duration, max_duration, max_cps,
min_gap, ... An option none of the renderers takes, or a value of the wrong type, is an error
that lists the valid options or names the type.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="+",
                        help="a timeline.json file, a folder holding one, or a capture directory; "
                             "with --queue: captures, recordings, folders of recordings or store "
                             "URLs (s3://bucket/prefix[/CALL_ID], file:///path)")
    parser.add_argument("--to", required=True, metavar="NAME[,NAME...]",
                        help="renderer names, comma separated, or 'all' (see: aligner renderers)")
    parser.add_argument("--out", default="out", metavar="DIR", help="output folder (default out)")
    parser.add_argument("--stem", default="call", help="output file name stem (default call)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="renderer option, repeatable")
    parser.add_argument("--progress", choices=("auto", "yes", "no"), default="auto",
                        help="progress bars on stderr while the timeline is built and long "
                             "renderers run (default auto: when stderr is a terminal)")
    backfill = parser.add_argument_group("backfill (needs the cluster extra)")
    backfill.add_argument("--queue", metavar="REDIS_URL",
                          help="queue the renders for `aligner worker` instead of rendering here")
    backfill.add_argument("--store", metavar="URL",
                          help="where local captures go before they are queued")
    backfill.add_argument("--store-endpoint", metavar="URL", help="S3-compatible endpoint")
    backfill.add_argument("--no-wait", action="store_true",
                          help="queue and return (no progress bar)")


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
    if args.queue:
        if options:
            raise RendererError("--option is not passed to queued renders")
        return _backfill(args, list(classes))
    if len(args.source) > 1:
        raise RendererError("one source at a time (several only with --queue)")
    options.setdefault("progress", args.progress)  # every renderer takes it
    per_renderer = _share_options(classes, options)

    source = Path(args.source[0])
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
            paths = cls(**per_renderer[name]).render(timeline, args.out, stem=args.stem,
                                                     base=base)
        except (AlignerError, TypeError, ValueError, OSError) as exc:
            failed += 1
            print(f"aligner render: {name} failed: {exc}", file=sys.stderr)
            continue
        for p in paths:
            print(p)
    if failed:
        raise RendererError(f"{failed} of {len(classes)} renderers failed")
    return 0


def _backfill(args: argparse.Namespace, names: list[str]) -> int:
    """Queue renders of existing captures and follow them with a progress bar."""
    import asyncio
    import sys

    from aligner.errors import AlignerError
    from aligner.progress import reporter
    from aligner.service.backfill import find_calls, upload, wait
    from aligner.service.jobs import RenderQueue

    if not args.queue.startswith(("redis://", "rediss://", "unix://")):
        raise AlignerError(f"--queue must be a redis:// URL, got {args.queue!r}")
    calls = find_calls(args.source, args.store, args.store_endpoint)
    local = [c for c in calls if c.local]
    report = reporter("uploading", len(local), args.progress, unit="calls", speed=None)
    sent = 0
    for n, call in enumerate(local, 1):
        sent += upload(call, names)
        report(n)

    async def queue_all() -> tuple[list[str], dict[str, str]]:
        queue = RenderQueue(args.queue)
        try:
            keys = [await queue.enqueue(c.store.url, c.call_id, names) for c in calls]
            print(f"aligner render: {len(keys)} render jobs queued ({sent} captures uploaded)",
                  file=sys.stderr, flush=True)
            if args.no_wait:
                return keys, {}
            bar = reporter("rendered", len(keys), args.progress, unit="jobs", speed=None)
            return keys, await wait(queue, keys, lambda done, failed: bar(
                done + failed, f"{failed} failed" if failed else ""))
        finally:
            await queue.close()

    try:
        keys, statuses = asyncio.run(queue_all())
    except OSError as exc:
        raise AlignerError(f"cannot reach the queue at {args.queue}: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise AlignerError(f"cannot reach the queue at {args.queue}: {exc}") from exc
        raise
    failed = sorted(c.call_id for c, k in zip(calls, keys, strict=True)
                    if statuses and statuses.get(k) != "complete")
    for call_id in failed:
        print(f"aligner render: {call_id} failed (its render.json says why)", file=sys.stderr)
    if statuses:
        print(f"aligner render: {len(calls) - len(failed)} of {len(calls)} rendered",
              file=sys.stderr)
    if failed:
        raise AlignerError(f"{len(failed)} of {len(calls)} renders failed")
    return 0


def _share_options(classes: dict, options: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each renderer's share of ``options``: those it takes. Raises RendererError (before any
    work) for an option none of them takes, listing what they take, and for a value of the
    wrong type (naming the option and the type)."""
    from renderers import COMMON_OPTIONS, check_options

    from ..errors import RendererError

    takes = {name: None if cls.options_spec is None else {**COMMON_OPTIONS, **cls.options_spec}
             for name, cls in classes.items()}
    valid = sorted({k for spec in takes.values() if spec is not None for k in spec})
    for key in options:
        if not any(spec is None or key in spec for spec in takes.values()):
            raise RendererError(f"--option {key}: no renderer among {', '.join(classes)} takes "
                                f"it; valid options: {', '.join(valid)}")
    shares = {name: {k: v for k, v in options.items() if spec is None or k in spec}
              for name, spec in takes.items()}
    for name, cls in classes.items():
        check_options(cls, shares[name])  # bad values fail now, naming the option
    return shares
