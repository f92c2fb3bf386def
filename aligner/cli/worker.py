"""``aligner worker --redis URL --store URL``: render the calls that the service instances queue."""

from __future__ import annotations

import argparse
import sys

HELP = "render queued calls (captions, visemes, video) for the service instances of a cluster"

EXAMPLES = """examples:
  aligner worker --redis redis://redis.internal:6379/0 --store s3://calls/prod --concurrency 4
  aligner worker --redis redis://127.0.0.1:6379/0 --store file:///srv/recordings
  aligner worker --redis redis://redis.internal:6379/0 --store s3://calls/prod \
      --voice-profiles redis://redis.internal:6379/0

Each job names its call and store; the worker fetches the capture, builds the timeline, runs the
renderers the instance asked for, uploads the outputs and updates the call's render.json. Run as
many workers on as many machines as the backlog needs (docs/service.md). SIGTERM lets running
renders finish (--shutdown-timeout); kill -9 loses nothing: another worker runs the job again.
Needs the cluster extra: pip install 'aligner[cluster]'.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", required=True, metavar="URL", help="redis://HOST:PORT/DB")
    parser.add_argument("--store", required=True, action="append", metavar="URL",
                        help="a store this worker reads and writes (file:///path or "
                             "s3://bucket/prefix; repeatable)")
    parser.add_argument("--store-endpoint", metavar="URL",
                        help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="renders at once, one process each (default 1: one per core)")
    parser.add_argument("--sweep", type=int, default=5, metavar="S",
                        help="seconds between sweeps for jobs whose worker died (their "
                             "heartbeat is older than the job's: 10 s) (default 5)")
    parser.add_argument("--voice-profiles", metavar="DIR|URL",
                        help="voice profiles, one per agent id, in a folder or in Redis "
                             "(redis://..., as the instances' --voice-profiles): each call's "
                             "timeline is aligned with its agent's and adds to it")
    parser.add_argument("--id", metavar="NAME", help="this worker's name (default host-pid)")
    parser.add_argument("--shutdown-timeout", type=float, default=60.0, metavar="S",
                        help="seconds SIGTERM leaves running renders (default 60)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..errors import AlignerError
    from ..service.jobs import JobPolicy, RenderWorker
    from ..workers import one_blas_thread

    if not args.redis.startswith(("redis://", "rediss://", "unix://")):
        raise AlignerError(f"--redis must be a redis:// URL, got {args.redis!r}")
    if args.concurrency < 1 or args.sweep < 1:
        raise AlignerError("--concurrency and --sweep must be >= 1")
    worker = RenderWorker(args.redis, args.store, args.concurrency, args.store_endpoint,
                          JobPolicy(sweep=args.sweep),
                          args.id, args.shutdown_timeout, args.voice_profiles)
    one_blas_thread()
    print(f"aligner worker: {worker.id} rendering jobs from {args.redis} "
          f"({args.concurrency} at once; stores {', '.join(worker.stores)})", file=sys.stderr,
          flush=True)
    asyncio.run(worker.run())
    print("aligner worker: stopped", file=sys.stderr, flush=True)
    return 0
