"""``aligner renderers``: list installed renderers (built-in and plugins) with a description."""

from __future__ import annotations

import argparse

HELP = "list the installed renderers (built-in and aligner.renderers plugins)"
EXAMPLES = """examples:
  aligner renderers                  # name and one-line description of each
  aligner renderers --names          # names only, one a line

Third-party renderers register in the "aligner.renderers" entry-point group (see docs/formats.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--names", action="store_true", help="print names only")


def run(args: argparse.Namespace) -> int:
    import renderers

    listing = renderers.available()
    width = max((len(n) for n in listing), default=0)
    for name, description in listing.items():
        print(name if args.names else f"{name:<{width}}  {description}")
    return 0
