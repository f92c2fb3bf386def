"""The wire: the voice-agent audio websocket and everything that speaks it.

- :mod:`.events`: the typed events a frame becomes (alignment chunk, agent audio, ``clear``,
  update, metadata, ping/pong, Twilio media, ``Unknown``), and :class:`~.events.Stamped`, an event
  with the time an edge saw it;
- :mod:`.protocol`: the sans-I/O codec, frames in and events out, for the web and Twilio
  protocols, both directions (the client, the emulator and the service share it);
- :mod:`.capture`: the capture format (every frame of a call with its time) and its reader;
- :mod:`.client`: the aiohttp client that records or streams a call;
- :mod:`.source`: the user audio a client plays (files, microphone, silence, turns);
- :mod:`.answers`: the server's answers to a client's mistakes (close codes and reasons, HTTP
  error bodies), one table for the emulator and the service.
"""
