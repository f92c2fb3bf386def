"""``aligner serve``: the service for avatar front ends (lip-sync proxy, observers, recordings)."""

from __future__ import annotations

import argparse
import sys

HELP = "run the service for avatar front ends: lip-sync audio-websocket proxy, live observers, recordings, demo page"

EXAMPLES = """examples:
  aligner serve                                  # embedded emulator upstream; open http://127.0.0.1:8090/
  aligner serve --port 0                         # any free port (printed on stderr)
  aligner serve --upstream https://api.retellai.com --api-key $RETELL_API_KEY
  aligner serve --upstream https://api.retellai.com --api-key $RETELL_API_KEY --fallback-key
                                                 # the demo page (and keyless requests) use the key
  aligner serve --render vtt,visemes --recordings ./recordings --render-workers 2
  aligner serve --voice-profiles ./voices         # learn each agent's voice across calls
  aligner serve --host 0.0.0.0 --api-key $KEY --secret $SECRET   # reachable beyond this machine

more than one machine (docs/service.md): every instance shares Redis, a store and the secret
  aligner serve --redis redis://redis.internal:6379/0 --store s3://calls/prod --secret $SECRET --render vtt,visemes
  aligner worker --redis redis://redis.internal:6379/0 --store s3://calls/prod --concurrency 4

front ends connect to ws://HOST:PORT/audio-websocket/{call_id}?enable_words=true&enable_visemes=true
observers to ws://HOST:PORT/live/{call_id}?token=<observer_token from /register-call>
recordings: GET /calls with 'Authorization: Bearer <API key>' (or the --secret when no API key is
given); one call's recording also with ?token=<its observer_token>. A host other than loopback
needs --api-key (or $RETELL_API_KEY) or --secret, or --insecure.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090; 0: any free port)")
    parser.add_argument("--upstream", metavar="URL",
                        help="base URL of the voice-agent service (default: an embedded emulator)")
    parser.add_argument("--api-key", default=None,
                        help="the service's upstream API key (default: $RETELL_API_KEY, or the "
                             "embedded emulator's key)")
    parser.add_argument("--fallback-key", action="store_true",
                        help="lend --api-key to register-call/get-call requests without an "
                             "Authorization header and to the demo page (default off: they "
                             "get the upstream's 401, as from the server; the demo page works "
                             "with the embedded emulator regardless)")
    parser.add_argument("--recordings", default="recordings", metavar="DIR",
                        help="folder of the call recordings (default ./recordings)")
    parser.add_argument("--render", default="", metavar="NAMES",
                        help="renderers run on every finished call, comma-separated (e.g. vtt,visemes,mp4)")
    parser.add_argument("--render-workers", type=int, default=1, metavar="N",
                        help="render jobs at once, each in a worker process (default 1)")
    parser.add_argument("--align-workers", type=int, default=2, metavar="N",
                        help="processes aligning agent chunks for word/viseme events (default 2)")
    parser.add_argument("--voice-profiles", metavar="DIR|URL",
                        help="voice profiles, one per agent id, in a folder or in Redis "
                             "(redis://..., shared by every instance and worker): calls are "
                             "aligned with what earlier calls of their agent learned, and add "
                             "to it")
    parser.add_argument("--viseme-set", default="oculus",
                        help="viseme set of the viseme events: oculus, talkinghead, azure, polly, rhubarb")
    parser.add_argument("--max-frame-bytes", type=int, default=64 * 1024, metavar="N",
                        help="largest front-end frame; larger closes with 1009 (default 65536)")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                        help="end a call after S seconds without frames (default: 30 s past "
                             "the call's end_call_after_silence_ms, so the upstream ends "
                             "silent calls itself)")
    parser.add_argument("--mic-rate", type=float, default=2.0, metavar="X",
                        help="mic audio allowed per call, in multiples of real time (default 2)")
    parser.add_argument("--secret", default=None,
                        help="secret of the observer tokens (default: random per process); "
                             "without --api-key, also the key of the recordings API")
    parser.add_argument("--insecure", action="store_true",
                        help="listen beyond loopback without --api-key or --secret (anyone who "
                             "reaches the port can then read the recordings with the default "
                             "key)")
    parser.add_argument("--shutdown-timeout", type=float, default=120.0, metavar="S",
                        help="seconds shutdown waits for render jobs (default 120)")
    cluster = parser.add_argument_group(
        "more than one instance (needs the cluster extra: pip install 'aligner[cluster]')")
    cluster.add_argument("--redis", metavar="URL",
                         help="redis://HOST:PORT/DB shared by every instance: observers of calls "
                              "on other instances, render jobs for `aligner worker`, recovery")
    cluster.add_argument("--store", metavar="URL",
                         help="recordings store: file:///path (default: --recordings) or "
                              "s3://bucket/prefix (needs --redis); S3 settings from the AWS_* "
                              "environment variables")
    cluster.add_argument("--store-endpoint", metavar="URL",
                         help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")
    cluster.add_argument("--spool", default="spool", metavar="DIR",
                         help="with --redis: local folder of captures on their way to the store "
                              "(default ./spool)")
    cluster.add_argument("--segment-interval", type=float, default=1.0, metavar="S",
                         help="with --redis: seconds between uploads of a live call's capture, "
                              "at most what a dying instance loses (default 1)")
    cluster.add_argument("--instance-id", metavar="NAME",
                         help="this instance's name in /stats, logs and call.json (default "
                              "host-pid)")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    from pathlib import Path

    import renderers

    from ..errors import AlignerError
    from ..service.app import ServiceConfig
    from ..service.proxy import Limits
    from ..visemes.sets import get_set
    from ..workers import one_blas_thread

    names = tuple(n.strip() for n in args.render.split(",") if n.strip())
    for name in names:
        renderers.get(name)  # unknown names fail now, listing the known ones
    try:
        get_set(args.viseme_set)
    except ValueError as exc:
        raise AlignerError(str(exc)) from exc
    if not 0 <= args.port <= 65535:
        raise AlignerError(f"port {args.port} is outside 0-65535")
    if args.max_frame_bytes < 1024 or (args.idle_timeout is not None and args.idle_timeout <= 0) \
            or args.mic_rate <= 0:
        raise AlignerError("--max-frame-bytes must be >= 1024, --idle-timeout and --mic-rate > 0")
    upstream = args.upstream.rstrip("/") if args.upstream else None
    if upstream and not upstream.startswith(("http://", "https://")):
        raise AlignerError(f"--upstream must be an http(s):// base URL, got {upstream!r}")
    explicit_key = args.api_key or os.environ.get("RETELL_API_KEY")
    if not (explicit_key or args.secret or args.insecure or _loopback(args.host)):
        raise AlignerError(
            f"refusing to listen on {args.host} without --api-key or --secret: recordings "
            "(people's voices) would be readable by anyone who reaches the port with the "
            "default key; give a key, or --insecure to do it anyway")
    api_key = explicit_key or "dev-key"
    if args.segment_interval <= 0:
        raise AlignerError("--segment-interval must be > 0")
    if args.redis:
        if not args.redis.startswith(("redis://", "rediss://", "unix://")):
            raise AlignerError(f"--redis must be a redis:// URL, got {args.redis!r}")
        if not args.secret:
            raise AlignerError("--redis needs --secret: observer tokens must be valid on every "
                               "instance")
    elif args.store and not args.store.startswith("file://"):
        raise AlignerError(f"--store {args.store} needs --redis (render workers read it); "
                           "one process keeps recordings in a folder")
    config = ServiceConfig(
        upstream=upstream, api_key=api_key, fallback_key=args.fallback_key,
        recordings=Path(args.recordings), renderers=names,
        render_workers=args.render_workers, align_workers=args.align_workers,
        viseme_set=args.viseme_set,
        limits=Limits(max_frame_bytes=args.max_frame_bytes, idle_timeout=args.idle_timeout,
                      mic_realtime_factor=args.mic_rate),
        secret=args.secret.encode() if args.secret else None,
        access_key=None if explicit_key else args.secret,
        shutdown_timeout=args.shutdown_timeout, redis=args.redis, store=args.store,
        store_endpoint=args.store_endpoint, spool=Path(args.spool),
        instance_id=args.instance_id, segment_interval=args.segment_interval,
        voice_profiles=args.voice_profiles)
    one_blas_thread()  # the align and render workers have the cores
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        raise AlignerError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return 0


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(config, host: str, port: int) -> None:
    import asyncio
    import signal

    from aiohttp import web

    from ..service.app import create_app

    runner = web.AppRunner(create_app(config), shutdown_timeout=15.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1] if site._server else port
        where = (f"recordings in {config.store or config.recordings}" if not config.redis else
                 f"Redis {config.redis}, store {config.store or config.recordings}")
        print(f"aligner serve: listening on http://{host}:{bound}/ (upstream: "
              f"{config.upstream or 'embedded emulator'}; {where})", file=sys.stderr, flush=True)
        if not _loopback(host):
            print(f"aligner serve: {host} is reachable beyond this machine: recordings need "
                  "the API key or a call's observer token", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("aligner serve: shutting down, finishing recordings...", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()
    print("aligner serve: stopped", file=sys.stderr, flush=True)
