// One call through Retell's unmodified browser SDK (retell-client-js-sdk) under Node.
//
// Only the browser APIs the SDK uses are supplied: `ws` as the page's WebSocket, a navigator
// that says Chrome (so the SDK takes its AudioWorklet path), a fake AudioContext that runs the
// SDK's own worklet code on an audio clock (render quanta of 128 frames, `speed` times real
// time), and a microphone that plays WAV clips from samples/ when the script says so.
//
//   node sdk_call.mjs '{"sdk": "retell-client-js-sdk", "callId": "...", "sampleRate": 24000,
//                       "customEndpoint": "ws://127.0.0.1:8090/audio-websocket/", ...}'
//
// Config: sdk (package name), callId, sampleRate, enableUpdate, customEndpoint (SDK >= 1.2.7)
// or hostOverride (SDK 1.2.1: the page's code that points it elsewhere), speed, timeout
// (audio seconds), script: steps run in order, each when its condition holds:
//   {"say": "path.wav", "after": "agent_done", "pause": 0.7}   agent audio played, then `pause` s
//                                                               of silence
//   {"say": "path.wav", "after": "agent_speaking", "for": 1.5} agent audio audible `for` s
//   {"hangup": true, "after": ...}                              stopConversation()
// Output: one JSON object per line, {t: real s, at: audio s, kind, name, data}: every SDK event
// (kind "sdk"), every frame the page's socket received (kind "ws"), the speaker going audible or
// silent (kind "playback"), what the microphone did (kind "mic"), then a "summary".
import { Buffer, resolveObjectURL } from "node:buffer";
import { readFileSync } from "node:fs";
import { register } from "node:module";
import { performance } from "node:perf_hooks";
import WS from "ws";

register("./hooks.mjs", import.meta.url);
console.log = (...args) => process.stderr.write(args.join(" ") + "\n"); // the page's console

const config = JSON.parse(process.argv[2]);
const speed = config.speed || 1;
const QUANTUM = 128;
const started = performance.now();
let clock = 0; // audio seconds rendered so far (the audio clock)

function out(kind, name, data) {
  const line = { t: +((performance.now() - started) / 1000).toFixed(4), at: +clock.toFixed(4),
                 kind, name };
  if (data !== undefined) line.data = data;
  process.stdout.write(JSON.stringify(line) + "\n");
}

// --- the microphone: WAV clips from samples/, resampled to the context's rate --------------------
function readWav(path, rate) {
  const buf = readFileSync(path);
  let pos = 12, fmt = null, pcm = null;
  while (pos + 8 <= buf.length) {
    const id = buf.toString("ascii", pos, pos + 4), size = buf.readUInt32LE(pos + 4);
    if (id === "fmt ") fmt = { channels: buf.readUInt16LE(pos + 10), rate: buf.readUInt32LE(pos + 12),
                               bits: buf.readUInt16LE(pos + 22) };
    if (id === "data") pcm = buf.subarray(pos + 8, pos + 8 + size);
    pos += 8 + size + (size & 1);
  }
  if (!fmt || !pcm || fmt.bits !== 16 || fmt.channels !== 1) throw new Error(`${path}: need 16-bit mono PCM`);
  const n = pcm.length / 2, src = new Float32Array(n);
  for (let i = 0; i < n; i++) src[i] = pcm.readInt16LE(2 * i) / 32768;
  const m = Math.round(n * rate / fmt.rate), dst = new Float32Array(m);
  for (let j = 0; j < m; j++) { // linear interpolation
    const x = j * fmt.rate / rate, i = Math.floor(x), f = x - i;
    dst[j] = (src[i] ?? 0) * (1 - f) + (src[i + 1] ?? src[i] ?? 0) * f;
  }
  return dst;
}

class Microphone {
  constructor() { this.clip = null; this.pos = 0; }
  say(samples) { this.clip = samples; this.pos = 0; }
  get speaking() { return this.clip !== null; }
  read(n) {
    const frame = new Float32Array(n);
    if (this.clip) {
      const part = this.clip.subarray(this.pos, this.pos + n);
      frame.set(part);
      this.pos += part.length;
      if (this.pos >= this.clip.length) { this.clip = null; out("mic", "said"); }
    }
    return frame;
  }
}
const microphone = new Microphone();

// --- the audio graph: AudioContext, AudioWorklet, AudioWorkletNode ---------------------------------
const processors = new Map(); // name -> processor class (registerProcessor)
let portForProcessor = null;

class AudioWorkletProcessor {
  constructor() { this.port = portForProcessor; }
}

class AudioNode {
  constructor(context) { this.context = context; this.outputs = []; }
  connect(node) { this.outputs.push(node); return node; }
  disconnect() { this.outputs = []; }
}

class MediaStreamAudioSourceNode extends AudioNode {
  constructor(context, stream) { super(context); this.stream = stream; }
}

class AudioWorkletNode extends AudioNode {
  constructor(context, name) {
    super(context);
    const Processor = processors.get(name);
    if (!Processor) throw new Error(`no AudioWorkletProcessor registered as ${name}`);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    portForProcessor = port2;
    this.processor = new Processor();
    portForProcessor = null;
    context.workletNodes.push(this);
  }
  disconnect() { super.disconnect(); this.context.workletNodes = this.context.workletNodes.filter((n) => n !== this); }
}

class AudioContext {
  constructor(options = {}) {
    this.sampleRate = options.sampleRate || 48000;
    this.state = "suspended";
    this.destination = new AudioNode(this);
    this.workletNodes = [];
    this.audioWorklet = {
      addModule: async (url) => { // the worklet's code runs with the worklet scope's globals
        const code = await resolveObjectURL(url).text();
        new Function("AudioWorkletProcessor", "registerProcessor", code)(
          AudioWorkletProcessor, (name, cls) => processors.set(name, cls));
      },
    };
    contexts.push(this);
  }
  get currentTime() { return clock; }
  async resume() { this.state = "running"; }
  async suspend() { if (this.state !== "closed") this.state = "suspended"; }
  async close() { this.state = "closed"; }
  createMediaStreamSource(stream) { return new MediaStreamAudioSourceNode(this, stream); }
}
const contexts = [];

// --- the speaker: what the worklet plays, watched for the script ----------------------------------
const speaker = { audible: false, since: 0, lastAudible: -1, playedSince: 0, heardSinceStep: false };

function render(context) {
  const node = context.workletNodes[0];
  const rate = context.sampleRate;
  if (!node || context.state !== "running") return;
  const mic = microphone.read(QUANTUM);
  const outputs = [[new Float32Array(QUANTUM), new Float32Array(QUANTUM)]];
  node.processor.process([[mic, mic]], outputs, {});
  let peak = 0;
  for (const x of outputs[0][0]) peak = Math.max(peak, Math.abs(x));
  const audible = peak > 1e-3;
  if (audible !== speaker.audible) {
    speaker.audible = audible;
    out("playback", audible ? "audible" : "silent");
  }
  if (audible) {
    if (speaker.lastAudible < 0) speaker.since = clock;
    speaker.lastAudible = clock;
    speaker.playedSince += QUANTUM / rate;
    if (!microphone.speaking) speaker.heardSinceStep = true; // the agent, not under the user

  }
  clock += QUANTUM / rate;
}

function tick() {
  const context = contexts.find((c) => c.state === "running");
  const rate = context ? context.sampleRate : 16000;
  const due = ((performance.now() - started) / 1000) * speed;
  while (clock + QUANTUM / rate <= due) {
    if (context) render(context); else clock += QUANTUM / rate;
  }
  step();
}

// --- the page's WebSocket: `ws`, watched ----------------------------------------------------------
let sockets = 0, binaryBytes = 0;
class PageWebSocket extends WS {
  constructor(url, protocols) {
    super(url, protocols);
    sockets += 1;
    out("ws", "open_requested", { url: String(url) });
    this.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        const node = contexts[0]?.workletNodes[0];
        const queued = node ? node.processor.audioData.reduce((n, a) => n + a.length, 0) - node.processor.index : 0;
        out("ws", "text", { text: event.data, queued_samples: queued });
      } else {
        binaryBytes += event.data.byteLength;
        out("ws", "binary", { bytes: event.data.byteLength });
      }
    });
    this.addEventListener("close", (event) => out("ws", "close", { code: event.code, reason: event.reason }));
  }
}
globalThis.WebSocket = PageWebSocket;
if (config.hostOverride) {
  // SDK 1.2.1 has no custom endpoint: the app's own code wraps the page's WebSocket before the
  // SDK is loaded (the snippet of docs/service.md, run as the page would run it).
  new Function("window", config.hostOverride)(globalThis);
}
globalThis.AudioContext = AudioContext;
globalThis.AudioWorkletNode = AudioWorkletNode;
globalThis.navigator = {
  userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  vendor: "Google Inc.",
  mediaDevices: { getUserMedia: async () => ({ getTracks: () => [{ stop() {} }] }) },
};

// --- the script ----------------------------------------------------------------------------------
const steps = [...(config.script || [])];
let stepStarted = 0;
let client = null, ended = false;

function ready(s) {
  if (s.after === "agent_done") {
    return speaker.heardSinceStep && !microphone.speaking && clock - speaker.lastAudible >= (s.pause ?? 0.7);
  }
  if (s.after === "agent_speaking") return speaker.heardSinceStep && clock - speaker.since >= (s.for ?? 1.0) && speaker.audible;
  if (s.after === "time") return clock - stepStarted >= (s.wait ?? 0);
  throw new Error(`unknown step condition ${s.after}`);
}

function step() {
  if (ended || !steps.length || !client) return;
  const s = steps[0];
  if (!ready(s)) return;
  steps.shift();
  stepStarted = clock;
  speaker.heardSinceStep = false;
  speaker.lastAudible = -1;
  if (s.say) {
    out("mic", "say", { clip: s.say });
    microphone.say(readWav(s.say, contexts[0]?.sampleRate || config.sampleRate));
  } else if (s.hangup) {
    out("mic", "hangup");
    client.stopConversation();
  }
}

function finish(code) {
  clearInterval(timer);
  out("summary", "end", { steps_left: steps.length, binary_bytes: binaryBytes, sockets });
  setTimeout(() => process.exit(code), 50);
}

const timer = setInterval(tick, 5);
const { RetellWebClient } = await import(config.sdk);
client = config.customEndpoint ? new RetellWebClient(config.customEndpoint) : new RetellWebClient();
for (const name of ["conversationStarted", "conversationEnded", "update", "metadata", "error",
                    "agentStartTalking", "agentStopTalking", "disconnect", "reconnect"]) {
  client.on(name, (data) => {
    out("sdk", name, data);
    if (name === "conversationEnded") { ended = true; setTimeout(() => finish(0), 300 / speed); }
  });
}
out("sdk", "startConversation", { sdk: config.sdk });
await client.startConversation({ callId: config.callId, sampleRate: config.sampleRate,
                                 enableUpdate: config.enableUpdate ?? true });
setTimeout(() => { out("summary", "timeout"); finish(2); }, (config.timeout || 120) * 1000 / speed);
