"""Exceptions raised by the aligner package.

Hierarchy (every exception derives from :class:`AlignerError`)::

    AlignerError
    ├── AudioError              bad audio: unknown encoding, odd byte count, undecodable file
    ├── ProtocolError           a frame that cannot be understood (the peer's fault)
    ├── CaptureError            a capture directory that cannot be read or written
    ├── AlignmentError          the aligner was given something it cannot align
    ├── MissingBackendError     an optional backend is not installed (names the extra)
    ├── RendererError           unknown renderer or a renderer that failed
    └── SessionError            a session fed after it finished

Each exception carries the offending values as attributes and builds its message from them.
"""

from __future__ import annotations

__all__ = [
    "AlignerError",
    "AlignmentError",
    "AudioError",
    "CaptureError",
    "MissingBackendError",
    "ProtocolError",
    "RendererError",
    "SessionError",
]


class AlignerError(Exception):
    """Base class of every error this package raises on purpose."""


class AudioError(AlignerError):
    """Audio that cannot be decoded, encoded or resampled."""


class ProtocolError(AlignerError):
    """A frame the protocol codec cannot turn into an event.

    Attributes:
        frame: the offending frame (truncated to 200 characters/bytes).
        reason: why it was rejected.
    """

    def __init__(self, reason: str, frame: str | bytes | None = None) -> None:
        self.reason = reason
        self.frame = frame[:200] if frame is not None else None
        super().__init__(reason if frame is None else f"{reason}: {self.frame!r}")

    def __reduce__(self):  # keep picklable with two arguments
        return (type(self), (self.reason, self.frame))


class CaptureError(AlignerError):
    """A capture directory that cannot be read or written."""


class AlignmentError(AlignerError):
    """Input the aligner cannot work with."""


class MissingBackendError(AlignerError):
    """An optional backend is not installed, or is installed but cannot be used.

    Attributes:
        backend: what is missing (e.g. ``"espeak-ng"``).
        extra: the pip extra that installs it (e.g. ``"speech"``).
        cause: why it cannot be used when it is installed (the loader's own words, e.g.
            ``"PortAudio library not found"``), else None.
        install: what to do about it (default: ``pip install 'aligner[EXTRA]'``).
    """

    def __init__(self, backend: str, extra: str, cause: str | None = None,
                 install: str | None = None) -> None:
        self.backend = backend
        self.extra = extra
        self.cause = cause
        self.install = install or f"pip install 'aligner[{extra}]'"
        what = f"{backend} cannot be used ({cause})" if cause else f"{backend} is not installed"
        super().__init__(f"{what}: {self.install}")

    def __reduce__(self):
        return (type(self), (self.backend, self.extra, self.cause, self.install))


class RendererError(AlignerError):
    """An unknown renderer name, or a renderer that failed."""


class SessionError(AlignerError):
    """A :class:`aligner.session.Session` used against its rules (fed after it finished)."""
