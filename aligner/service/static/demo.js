// aligner live lip-sync demo: plain JS, no build step.
//
// How a page schedules the service's events (see docs/service.md, "Scheduling on a page"):
//   * every agent audio frame is appended to a play queue, back-to-back; the page counts the
//     samples it has received: a frame's first sample has stream offset = samples received before.
//   * word/viseme events arrive BEFORE their audio and carry start_sample/end_sample on that same
//     stream clock; the page keeps them in lists.
//   * each animation frame, the page turns AudioContext.currentTime into the stream sample now
//     playing (through the queue's segments) and shows the word/viseme covering that sample.
//   * on "clear": stop every queued source, forget the segments and every event not yet played;
//     the stream clock continues from the samples received (cleared audio was delivered).
"use strict";

const RATE = 24000;                 // the call's sample rate (the AudioContext runs at it too)
const FRAME = 960;                  // mic frame: 40 ms at 24 kHz
const VISEMES = {                   // oculus viseme -> [mouth rx, ry, teeth opacity]
  sil: [22, 2, 0], PP: [18, 1, 0], FF: [22, 4, 1], TH: [22, 6, 1], DD: [22, 8, 0.6],
  kk: [21, 10, 0.3], CH: [16, 9, 0.8], SS: [24, 5, 1], nn: [21, 7, 0.5], RR: [15, 10, 0.2],
  aa: [24, 24, 0.3], E: [28, 14, 0.6], ih: [26, 10, 0.7], oh: [15, 18, 0], ou: [11, 12, 0],
};

const $ = (id) => document.getElementById(id);
const demo = window.demo = {
  state: "idle", callId: null, framesReceived: 0, samplesReceived: 0, wordsReceived: 0,
  visemesReceived: 0, clears: 0, visemeChanges: [], shownWords: [], error: null,
  firstAudioAt: null, firstWordAt: null, captions: {},
};

let ctx = null, ws = null, micNode = null, micSource = null, sampleTimer = null;
let nextTime = 0;                   // AudioContext time where the next agent frame starts
let segments = [];                  // [{s0, s1, t0}] stream samples [s0, s1) play from time t0
let sources = [];                   // scheduled AudioBufferSourceNodes (stopped on clear)
let words = [];                     // word events by index (latest wins)
let visemes = [];                   // viseme events in order
let shownViseme = "sil", shownWord = -1;

function setStatus(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state || "idle";
  demo.state = state || demo.state;
}

async function startCall(useSample) {
  $("start").disabled = $("start-sample").disabled = true;
  try {
    ctx = new AudioContext({ sampleRate: RATE });
    await ctx.resume();
    const resp = await fetch("/register-call", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ agent_id: "demo", audio_websocket_protocol: "web",
                             audio_encoding: "s16le", sample_rate: RATE }),
    });
    if (!resp.ok) throw new Error(`register-call: ${resp.status} ${await resp.text()}`);
    const call = await resp.json();
    demo.callId = call.call_id;
    $("call-id").textContent = call.call_id;
    const live = `/live/${call.call_id}?token=${call.observer_token}`;
    $("observer").textContent = live; $("observer").href = live;
    connect(call.call_id);
    if (useSample) await streamSample("user1.wav"); else await streamMic();
    $("hangup").disabled = false;
  } catch (err) {
    fail(err);
  }
}

function connect(callId) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/audio-websocket/${callId}` +
                     "?enable_update=true&enable_words=true&enable_visemes=true");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => setStatus("live", "live");
  ws.onmessage = (m) => (typeof m.data === "string" ? onText(m.data) : onAudio(m.data));
  ws.onclose = (e) => {
    setStatus(`closed ${e.code}${e.reason ? " " + e.reason : ""}`, "closed");
    demo.closeCode = e.code; demo.closeReason = e.reason;
    stopMic();
    $("hangup").disabled = true;
  };
  setInterval(() => ws && ws.readyState === 1 && ws.send("ping"), 5000);
}

function onAudio(buf) {
  const pcm = new Int16Array(buf);
  const audio = ctx.createBuffer(1, pcm.length, RATE);
  const ch = audio.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = audio;
  src.connect(ctx.destination);
  nextTime = Math.max(nextTime, ctx.currentTime + 0.05);
  src.start(nextTime);
  if (demo.firstAudioAt === null) demo.firstAudioAt = nextTime;
  segments.push({ s0: demo.samplesReceived, s1: demo.samplesReceived + pcm.length, t0: nextTime });
  sources.push(src);
  src.onended = () => { sources = sources.filter((s) => s !== src); };
  nextTime += pcm.length / RATE;
  demo.framesReceived += 1;
  demo.samplesReceived += pcm.length;
  $("audio-stats").textContent = `${demo.framesReceived} frames, ` +
    `${(demo.samplesReceived / RATE).toFixed(1)} s`;
}

function onText(text) {
  if (text === "clear") return onClear();
  if (text === "ping" || text === "pong") return;
  let ev;
  try { ev = JSON.parse(text); } catch { return; }      // tolerant reader
  if (ev.event_type === "word") {
    words[ev.index] = ev; demo.wordsReceived += 1;
  } else if (ev.event_type === "viseme") {
    visemes.push(ev); demo.visemesReceived += 1;
  } else if (ev.event_type === "update") {
    showTranscript(ev.transcript || []);
  }
  $("event-stats").textContent = `${demo.wordsReceived} words, ${demo.visemesReceived} visemes`;
}

function onClear() {
  demo.clears += 1;
  demo.beforeClear = { queued: sources.length, playing: ctx ? streamSampleNow() !== null : false };
  for (const s of sources) { try { s.stop(); } catch { /* already stopped */ } }
  sources = []; segments = [];
  nextTime = ctx ? ctx.currentTime : 0;
  // everything announced for audio not yet played is void; the clock continues from received
  words = words.map((w) => (w && w.start_sample < playhead.last ? w : undefined));
  visemes = [];
  showViseme("sil", false);
  showWord(-1);
  demo.afterClear = {                     // what the page shows right after the clear
    viseme: $("mouth").dataset.viseme, highlighted: $("caption").querySelectorAll(".current").length,
    queued: sources.length, playing: streamSampleNow() !== null,
  };
}

// the stream sample playing now, or null when nothing plays
const playhead = { last: 0 };
function streamSampleNow() {
  const t = ctx.currentTime;
  while (segments.length && segments[0].t0 + (segments[0].s1 - segments[0].s0) / RATE <= t) {
    segments.shift();
  }
  const seg = segments[0];
  if (!seg || t < seg.t0) return null;
  const s = seg.s0 + Math.floor((t - seg.t0) * RATE);
  playhead.last = s;
  return s;
}

function tick() {
  requestAnimationFrame(tick);
  if (!ctx) return;
  const s = streamSampleNow();
  if (s === null) { showViseme("sil", false); return; }
  while (visemes.length > 1 && visemes[0].end_sample <= s) visemes.shift();
  const v = visemes[0];
  showViseme(v && v.start_sample <= s && s < v.end_sample ? v.viseme : "sil", true);
  let current = -1;
  for (let i = words.length - 1; i >= 0; i--) {
    const w = words[i];
    if (w && w.start_sample <= s) { current = w.end_sample > s ? i : -1; break; }
  }
  if (current >= 0) showWord(current);
}

function showViseme(name, playing) {
  if (name === shownViseme) return;
  shownViseme = name;
  const [rx, ry, teeth] = VISEMES[name] || VISEMES.sil;
  const m = $("mouth-shape");
  m.setAttribute("rx", rx); m.setAttribute("ry", ry);
  $("teeth").style.opacity = teeth;
  $("mouth").dataset.viseme = name;
  $("viseme-label").textContent = name;
  demo.visemeChanges.push({ t: ctx ? ctx.currentTime : 0, viseme: name, playing: !!playing });
}

function showWord(index) {
  if (index === shownWord) return;
  shownWord = index;
  const cap = $("caption");
  if (index < 0) { for (const el of cap.querySelectorAll(".current")) el.classList.remove("current"); return; }
  // the caption line: the current utterance's words (as written, with their punctuation) up to
  // the one being spoken; a new utterance starts a new line
  const utterance = words[index].utterance;
  let first = index;
  while (first > 0 && words[first - 1] && words[first - 1].utterance === utterance &&
         index - first < 12) first--;
  cap.textContent = "";
  for (let i = first; i <= index; i++) {
    if (!words[i]) continue;
    const el = document.createElement("span");
    el.className = i === index ? "word current" : "word";
    el.textContent = words[i].text || words[i].word;
    cap.append(el, " ");                  // a space: lines may wrap between words
  }
  demo.shownWords.push(words[index].word);
  demo.captions[utterance] = cap.textContent.trim();
  if (demo.firstWordAt === null) demo.firstWordAt = ctx.currentTime;
}

function showTranscript(turns) {
  const ol = $("transcript");
  ol.textContent = "";
  for (const turn of turns) {
    const li = document.createElement("li");
    li.className = turn.role; li.textContent = turn.content;
    ol.appendChild(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

// --- microphone: 40 ms frames of s16le at the call's rate ---------------------------------
function sendFloat(data) {
  if (!ws || ws.readyState !== 1) return;
  const out = new Int16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.max(-1, Math.min(1, data[i])) * 32767;
  ws.send(out.buffer);
}

async function streamMic() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: {
    channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
  micSource = ctx.createMediaStreamSource(stream);
  micNode = ctx.createScriptProcessor(1024, 1, 1);
  micNode.onaudioprocess = (e) => sendFloat(e.inputBuffer.getChannelData(0));
  micSource.connect(micNode);
  micNode.connect(ctx.destination);        // keeps the processor running; it outputs silence
}

async function streamSample(name) {
  const buf = await ctx.decodeAudioData(await (await fetch(`/samples/${name}`)).arrayBuffer());
  const data = buf.getChannelData(0);
  // 5 s of silence first (the agent greets), then the clip, then silence, in real time
  const lead = Math.round(5 * RATE), total = lead + data.length + 4 * RATE;
  let pos = 0;
  sampleTimer = setInterval(() => {
    const frame = new Float32Array(FRAME);
    for (let i = 0; i < FRAME; i++) {
      const k = pos + i - lead;
      frame[i] = k >= 0 && k < data.length ? data[k] : 0;
    }
    pos = (pos + FRAME) % total;
    sendFloat(frame);
  }, (FRAME / RATE) * 1000);
}

function stopMic() {
  if (sampleTimer) clearInterval(sampleTimer);
  if (micNode) micNode.disconnect();
  if (micSource) micSource.disconnect();
  sampleTimer = micNode = micSource = null;
}

function fail(err) {
  demo.error = String(err);
  setStatus(`error: ${err.message || err}`, "error");
}

$("start").onclick = () => startCall(false);
$("start-sample").onclick = () => startCall(true);
$("hangup").onclick = () => { if (ws) ws.close(1000, "user_hangup"); };
requestAnimationFrame(tick);
