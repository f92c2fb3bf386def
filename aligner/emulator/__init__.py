"""A local Retell-compatible voice-agent server: register-call, get-call, the audio websocket
(web and Twilio forms) and a real agent loop (espeak-ng or hibari speech out, VAD and
pocketsphinx in).

>>> from aligner.emulator import EmbeddedEmulator, EmulatorConfig
>>> EmulatorConfig().api_key
'dev-key'
"""

from .app import EmbeddedEmulator, create_app
from .config import DEFAULT_DIALOGUE, EmulatorConfig

__all__ = ["DEFAULT_DIALOGUE", "EmbeddedEmulator", "EmulatorConfig", "create_app"]
