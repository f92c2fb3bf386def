"""The service for avatar front ends (``aligner serve``): a drop-in lip-sync proxy of the audio
websocket, live observers, recordings rendered off the event loop, and a demo page.

- :mod:`aligner.service.app` — the aiohttp application: routes, upstream, limits, shutdown;
- :mod:`aligner.service.proxy` — one proxied call (relay, capture, word/viseme events);
- :mod:`aligner.service.options` — front-end options, per-call limits, counters;
- :mod:`aligner.service.lipsync` — word/viseme events per chunk, in worker processes;
- :mod:`aligner.service.observers` — per-call tokens and the observer fan-out;
- :mod:`aligner.service.recordings` — recordings, the render worker pool and ``/calls``.

More than one instance (``aligner serve --redis``, the ``cluster`` extra; ``docs/service.md``):

- :mod:`aligner.service.cluster` — heartbeats, observers across instances, recovery (Redis);
- :mod:`aligner.service.store` — object stores: a folder (``file://``) or S3 (``s3://``);
- :mod:`aligner.service.uploads` — a live capture sent to the store in segments, and back;
- :mod:`aligner.service.stored` — recordings in the store, ``/calls`` over it;
- :mod:`aligner.service.jobs` — render jobs on a Redis queue, ``aligner worker``;
- :mod:`aligner.service.backfill` — ``aligner render --queue`` of recorded calls.

>>> from aligner.service import ServiceConfig
>>> ServiceConfig().render_workers
1
"""

from .app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]
