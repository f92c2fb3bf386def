// aligner browser client: plays a call's agent audio and says which word, viseme, caption and
// blend-shape weights are sounding now. An ES module, no build step, no dependencies; served by
// `aligner serve` at /client.js.
//
//   import { AgentPlayer } from "/client.js";
//   const ctx = new AudioContext({ sampleRate: 24000 });
//   const player = new AgentPlayer(ctx, { sampleRate: 24000 });
//   player.onViseme((v) => setMouth(v.viseme, v.weight));
//   player.onCaption((c) => showCaption(c.words, c.current));
//   const ws = new WebSocket(`${base}/audio-websocket/${callId}?enable_words=true&enable_visemes=true`);
//   ws.binaryType = "arraybuffer";
//   ws.onmessage = (m) => player.receive(m.data);
//   player.start();                       // follows playback on every animation frame
//
// How it schedules (the service's stream clock, docs/service.md):
//   * agent audio frames are queued back to back; a frame's first sample is at the number of
//     agent samples received before it (the stream clock);
//   * word, viseme and blend-shape events arrive before their audio, with sample offsets on that
//     clock; they are kept until played;
//   * on each animation frame the AudioContext's time is mapped to the stream sample playing
//     and the word, viseme and frame covering it are shown (callbacks fire on changes);
//   * `clear` stops every queued source at once and drops the events not reached: the mouth
//     goes to rest and the caption loses its highlight in the same call, before anything
//     else happens; the clock goes on from the samples received (cleared audio was delivered).

/**
 * A word event of the service (`enable_words=true`).
 * @typedef {Object} WordEvent
 * @property {number} index       word number in the call (a re-sent index replaces the older)
 * @property {string} word        the bare word
 * @property {string} text        the word as written, with its punctuation ("Bistro.")
 * @property {number} utterance   the agent utterance it belongs to (a caption line each)
 * @property {number} start_sample first sample on the stream clock
 * @property {number} end_sample   end sample (exclusive)
 * @property {boolean} final      false while the word may still grow
 */

/**
 * The word sounding now (it stays the word through a pause), or `null` after a clear.
 * @typedef {WordEvent|null} WordChange
 */

/**
 * The viseme shown now (`rest` when nothing plays).
 * @typedef {Object} VisemeChange
 * @property {string|number} viseme  the viseme (the service's set: oculus by default)
 * @property {number} weight         how far the mouth gets there, 0..1
 * @property {boolean} playing       whether agent audio is playing
 */

/**
 * The caption line: the current utterance's words as written, up to the one sounding.
 * @typedef {Object} Caption
 * @property {number} utterance   the utterance shown (-1: none yet)
 * @property {string[]} words     its words as written, at most `captionWords` of them
 * @property {number} current     index in `words` of the word sounding, -1 when none is
 * @property {string} text        the words joined by spaces
 */

/**
 * ARKit blend-shape weights now (`enable_blendshapes=true`); all 0 when nothing plays.
 * @typedef {Object} Blendshapes
 * @property {string[]} names     ARKit names (jawOpen, mouthClose, mouthFunnel, ...)
 * @property {number[]} weights   one weight 0..1 per name
 * @property {boolean} playing    whether agent audio is playing
 */

/**
 * What happened at a clear.
 * @typedef {Object} ClearInfo
 * @property {number} sample      the stream sample the playhead had reached
 * @property {number} dropped     queued audio sources stopped
 * @property {boolean} wasPlaying whether agent audio was playing
 */

const MULAW = (() => {               // G.711 mu-law byte -> linear sample (as aligner.audio)
  const t = new Int16Array(256);
  for (let i = 0; i < 256; i++) {
    const u = ~i & 0xff, e = (u >> 4) & 7, m = u & 15;
    const mag = (((m << 3) + 0x84) << e) - 0x84;
    t[i] = u & 0x80 ? -mag : mag;
  }
  return t;
})();

/** Plays agent audio back to back and follows it with words, visemes, captions, weights. */
export class AgentPlayer {
  /**
   * @param {AudioContext} ctx         where the agent audio plays
   * @param {Object} [opts]
   * @param {number} [opts.sampleRate=24000]   the call's sample rate
   * @param {"s16le"|"mulaw"} [opts.encoding="s16le"] the call's audio encoding
   * @param {string|number} [opts.rest="sil"]  the rest viseme of the service's set
   * @param {number} [opts.startDelay=0.05]    seconds between a frame's arrival and its start
   *        when nothing is queued (room for the next frames)
   * @param {number} [opts.captionWords=12]    most words on the caption line
   * @param {AudioNode} [opts.destination]     where to play (default ctx.destination)
   */
  constructor(ctx, opts = {}) {
    this.ctx = ctx;
    this.sampleRate = opts.sampleRate || 24000;
    this.encoding = opts.encoding || "s16le";
    this.rest = opts.rest === undefined ? "sil" : opts.rest;
    this.startDelay = opts.startDelay === undefined ? 0.05 : opts.startDelay;
    this.captionWords = opts.captionWords || 12;
    this.destination = opts.destination || ctx.destination;
    /** counters: frames and samples received, events received, clears */
    this.stats = { frames: 0, samples: 0, words: 0, visemes: 0, blendshapes: 0, clears: 0,
                   late: 0 };
    this._listeners = { word: [], viseme: [], clear: [], caption: [], blendshapes: [],
                        event: [] };
    /** AudioContext time the first agent audio started (null before any) */
    this.firstStartTime = null;
    this._reset();
    this._raf = null;
  }

  _reset() {
    this._nextTime = 0;           // AudioContext time where the next frame starts
    this._segments = [];          // [{s0, s1, t0}]: stream samples [s0, s1) play from t0
    this._sources = [];           // scheduled AudioBufferSourceNodes
    this._words = [];             // word events by index (latest wins)
    this._visemes = [];           // viseme events in order
    this._frames = [];            // blend-shape events in order
    this._last = 0;               // the last stream sample seen playing
    this._shownWord = -1;
    this._shownViseme = this.rest;
    this._caption = { utterance: -1, words: [], current: -1, text: "" };
    this._blendShown = null;      // the weights shown last (null: the rest)
    this._blendNames = [];
  }

  // --- the typed event API: each returns a function that unsubscribes -------------------------
  /** @param {(w: WordChange) => void} fn */ onWord(fn) { return this._on("word", fn); }
  /** @param {(v: VisemeChange) => void} fn */ onViseme(fn) { return this._on("viseme", fn); }
  /** @param {(c: ClearInfo) => void} fn */ onClear(fn) { return this._on("clear", fn); }
  /** @param {(c: Caption) => void} fn */ onCaption(fn) { return this._on("caption", fn); }
  /** @param {(b: Blendshapes) => void} fn */ onBlendshapes(fn) { return this._on("blendshapes", fn); }
  /** Every other JSON frame (update, metadata, talkinghead, ...), as parsed.
   * @param {(e: Object) => void} fn */ onEvent(fn) { return this._on("event", fn); }

  _on(kind, fn) {
    this._listeners[kind].push(fn);
    return () => { this._listeners[kind] = this._listeners[kind].filter((f) => f !== fn); };
  }

  _emit(kind, value) { for (const fn of this._listeners[kind]) fn(value); }

  // --- input ----------------------------------------------------------------------------------
  /**
   * Feed one websocket message's data: agent audio (ArrayBuffer), `clear`, or a JSON frame.
   * @param {ArrayBuffer|string} data
   */
  receive(data) {
    if (typeof data !== "string") return this.pushAudio(data);
    if (data === "clear") return this.clear();
    if (data === "ping" || data === "pong") return;
    let ev;
    try { ev = JSON.parse(data); } catch { return; }       // tolerant reader
    if (!ev || typeof ev !== "object") return;
    if (ev.late) this.stats.late += 1;
    if (ev.event_type === "word") {
      this._words[ev.index] = ev; this.stats.words += 1;
    } else if (ev.event_type === "viseme") {
      this._visemes.push(ev); this.stats.visemes += 1;
    } else if (ev.event_type === "blendshapes") {
      this._frames.push(ev); this.stats.blendshapes += 1;
    } else {
      this._emit("event", ev);
    }
  }

  /**
   * Queue one frame of agent audio right after the audio queued before it.
   * @param {ArrayBuffer} buf  the frame's bytes in the call's encoding
   */
  pushAudio(buf) {
    const n = this.encoding === "mulaw" ? buf.byteLength : buf.byteLength >> 1;
    const audio = this.ctx.createBuffer(1, Math.max(1, n), this.sampleRate);
    const ch = audio.getChannelData(0);
    if (this.encoding === "mulaw") {
      const b = new Uint8Array(buf);
      for (let i = 0; i < n; i++) ch[i] = MULAW[b[i]] / 32768;
    } else {
      const pcm = new Int16Array(buf, 0, n);
      for (let i = 0; i < n; i++) ch[i] = pcm[i] / 32768;
    }
    const src = this.ctx.createBufferSource();
    src.buffer = audio;
    src.connect(this.destination);
    this._nextTime = Math.max(this._nextTime, this.ctx.currentTime + this.startDelay);
    src.start(this._nextTime);
    const s0 = this.stats.samples;
    if (this.firstStartTime === null) this.firstStartTime = this._nextTime;
    this._segments.push({ s0, s1: s0 + n, t0: this._nextTime });
    this._sources.push(src);
    src.onended = () => { this._sources = this._sources.filter((s) => s !== src); };
    this._nextTime += n / this.sampleRate;
    this.stats.frames += 1;
    this.stats.samples += n;
  }

  /**
   * A `clear`: stop all queued audio now, drop every event not yet reached, relax the mouth
   * and take the highlight off the caption, all before this returns.
   */
  clear() {
    const wasPlaying = this.sampleNow() !== null;
    const info = { sample: this._last, dropped: this._sources.length, wasPlaying };
    for (const s of this._sources) { try { s.stop(); } catch { /* already stopped */ } }
    this._sources = []; this._segments = [];
    this._nextTime = this.ctx.currentTime;
    const reached = this._last;
    this._words = this._words.map((w) => (w && w.start_sample < reached ? w : undefined));
    this._visemes = [];
    this._frames = [];
    this.stats.clears += 1;
    this._emit("clear", info);
    this._showViseme(this.rest, 1, false);
    this._showWord(-1);
    this._showBlend(null, false);
  }

  // --- following playback ---------------------------------------------------------------------
  /** @returns {number|null} the stream sample playing now, or null when nothing plays */
  sampleNow() {
    const t = this.ctx.currentTime, rate = this.sampleRate;
    while (this._segments.length && this._segments[0].t0 + (this._segments[0].s1 -
           this._segments[0].s0) / rate <= t) this._segments.shift();
    const seg = this._segments[0];
    if (!seg || t < seg.t0) return null;
    const s = seg.s0 + Math.floor((t - seg.t0) * rate);
    this._last = s;
    return s;
  }

  /** How many agent audio frames are queued or playing. */
  get queued() { return this._sources.length; }

  /** Look at the playhead once and fire the callbacks of what changed (called by start()). */
  tick() {
    const s = this.sampleNow();
    if (s === null) {
      this._showViseme(this.rest, 1, false);
      this._showBlend(null, false);
      return;
    }
    while (this._visemes.length > 1 && this._visemes[0].end_sample <= s) this._visemes.shift();
    const v = this._visemes[0];
    if (v && v.start_sample <= s && s < v.end_sample) this._showViseme(v.viseme, v.weight, true);
    else this._showViseme(this.rest, 1, true);
    let current = -1;
    for (let i = this._words.length - 1; i >= 0; i--) {
      const w = this._words[i];
      if (w && w.start_sample <= s) { current = w.end_sample > s ? i : -1; break; }
    }
    if (current >= 0) this._showWord(current);  // in a pause the last word stays lit
    this._blendAt(s);
  }

  /** Follow playback on every animation frame (until stop()). */
  start() {
    const loop = () => { this._raf = requestAnimationFrame(loop); this.tick(); };
    if (this._raf === null) this._raf = requestAnimationFrame(loop);
  }

  /** Stop following playback (queued audio still plays). */
  stop() { if (this._raf !== null) cancelAnimationFrame(this._raf); this._raf = null; }

  _showViseme(viseme, weight, playing) {
    if (viseme === this._shownViseme && playing === this._visemePlaying) return;
    const changed = viseme !== this._shownViseme;
    this._shownViseme = viseme; this._visemePlaying = playing;
    if (changed) this._emit("viseme", { viseme, weight, playing });
  }

  _showWord(index) {
    if (index === this._shownWord) return;
    this._shownWord = index;
    if (index < 0) {
      this._emit("word", null);
      if (this._caption.current !== -1) {
        this._caption = { ...this._caption, current: -1 };
        this._emit("caption", this._caption);
      }
      return;
    }
    const w = this._words[index];
    this._emit("word", w);
    // the caption line: this utterance's words up to the one sounding
    let first = index;
    while (first > 0 && this._words[first - 1] && this._words[first - 1].utterance === w.utterance
           && index - first < this.captionWords - 1) first--;
    const words = [];
    let current = -1;
    for (let i = first; i <= index; i++) {
      if (!this._words[i]) continue;
      if (i === index) current = words.length;
      words.push(this._words[i].text || this._words[i].word);
    }
    this._caption = { utterance: w.utterance, words, current, text: words.join(" ") };
    this._emit("caption", this._caption);
  }

  _blendAt(s) {
    while (this._frames.length > 1) {
      const f = this._frames[0];
      const end = f.start_sample + f.frames.length * f.sample_rate / f.fps;
      if (end > s) break;
      this._frames.shift();
    }
    const f = this._frames[0];
    if (!f) return this._showBlend(null, true);
    const k = Math.floor((s - f.start_sample) * f.fps / f.sample_rate);
    if (k < 0 || k >= f.frames.length) return this._showBlend(null, true);
    this._showBlend({ names: f.names, weights: f.frames[k] }, true);
  }

  _showBlend(frame, playing) {
    if (!this._listeners.blendshapes.length) return;
    const weights = frame ? frame.weights : null;
    if (weights === this._blendShown) return;     // the same frame, or the rest again
    this._blendShown = weights;
    if (frame) this._blendNames = frame.names;
    const names = this._blendNames;
    this._emit("blendshapes", { names, weights: weights || names.map(() => 0), playing });
  }
}

/**
 * The service's audio websocket URL of a call, with the event options asked for.
 * @param {string} callId
 * @param {Object<string, boolean>} [options]  e.g. {enable_words: true, enable_visemes: true}
 * @param {Location|URL} [where=location]      the service's page location
 * @returns {string}
 */
export function audioWebsocketUrl(callId, options = {}, where = location) {
  const proto = where.protocol === "https:" ? "wss" : "ws";
  const query = Object.entries(options).filter(([, on]) => on).map(([k]) => `${k}=true`)
    .join("&");
  return `${proto}://${where.host}/audio-websocket/${callId}${query ? "?" + query : ""}`;
}

/**
 * Register a call for one of the service's own pages (`POST /demo/register-call`: the service
 * registers it with its own key, see docs/service.md); the answer is the call object with
 * `call_id` and `observer_token`. Your own pages register calls from your server, with your key.
 * @param {Object} [body]  the register-call body; agent_id "demo", web protocol, s16le, 24 kHz
 *        unless given
 * @returns {Promise<Object>}
 * @throws {Error} when the service answers with an error (its status and text)
 */
export async function registerCall(body = {}) {
  const resp = await fetch("/demo/register-call", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ agent_id: "demo", audio_websocket_protocol: "web",
                           audio_encoding: "s16le", sample_rate: 24000, ...body }),
  });
  if (!resp.ok) throw new Error(`register-call: ${resp.status} ${await resp.text()}`);
  return resp.json();
}
