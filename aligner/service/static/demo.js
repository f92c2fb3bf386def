// aligner live lip-sync demo: plain JS, no build step. The scheduling (agent audio back to
// back, the word/viseme covering the sample playing, clear) is the service's browser client
// module, /client.js (docs/service.md); this page draws what it reports and streams the mic.
import { AgentPlayer, audioWebsocketUrl, registerCall } from "/client.js";

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
  firstAudioAt: null, firstWordAt: null, captions: {}, player: null,
};

let ctx = null, ws = null, player = null, micNode = null, micSource = null, sampleTimer = null;

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
    player = demo.player = new AgentPlayer(ctx, { sampleRate: RATE });
    follow(player);
    const call = await registerCall({ sample_rate: RATE });
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
  ws = new WebSocket(audioWebsocketUrl(callId, { enable_update: true, enable_words: true,
                                                 enable_visemes: true }));
  ws.binaryType = "arraybuffer";
  ws.onopen = () => setStatus("live", "live");
  ws.onmessage = (m) => {
    player.receive(m.data);
    demo.firstAudioAt = player.firstStartTime;
    Object.assign(demo, { framesReceived: player.stats.frames,
                          samplesReceived: player.stats.samples,
                          wordsReceived: player.stats.words,
                          visemesReceived: player.stats.visemes });
    $("audio-stats").textContent = `${demo.framesReceived} frames, ` +
      `${(demo.samplesReceived / RATE).toFixed(1)} s`;
    $("event-stats").textContent = `${demo.wordsReceived} words, ${demo.visemesReceived} visemes`;
  };
  ws.onclose = (e) => {
    setStatus(`closed ${e.code}${e.reason ? " " + e.reason : ""}`, "closed");
    demo.closeCode = e.code; demo.closeReason = e.reason;
    stopMic();
    $("hangup").disabled = true;
  };
  setInterval(() => ws && ws.readyState === 1 && ws.send("ping"), 5000);
}

// what the player reports, drawn
function follow(p) {
  p.onViseme(({ viseme, playing }) => {
    const [rx, ry, teeth] = VISEMES[viseme] || VISEMES.sil;
    const m = $("mouth-shape");
    m.setAttribute("rx", rx); m.setAttribute("ry", ry);
    $("teeth").style.opacity = teeth;
    $("mouth").dataset.viseme = viseme;
    $("viseme-label").textContent = viseme;
    demo.visemeChanges.push({ t: ctx.currentTime, viseme, playing });
  });
  p.onWord((w) => {
    if (!w) return;
    demo.shownWords.push(w.word);
    if (demo.firstWordAt === null) demo.firstWordAt = ctx.currentTime;
  });
  p.onCaption(({ utterance, words, current }) => {
    const cap = $("caption");
    cap.textContent = "";
    words.forEach((text, i) => {
      const el = document.createElement("span");
      el.className = i === current ? "word current" : "word";
      el.textContent = text;
      cap.append(el, " ");                  // a space: lines may wrap between words
    });
    if (utterance >= 0) demo.captions[utterance] = cap.textContent.trim();
  });
  p.onClear((info) => {
    demo.clears += 1;
    demo.beforeClear = { queued: info.dropped, playing: info.wasPlaying };
    // the player relaxes the mouth and unlights the caption before receive("clear") returns:
    // look right after it
    queueMicrotask(() => {
      demo.afterClear = {
        viseme: $("mouth").dataset.viseme,
        highlighted: $("caption").querySelectorAll(".current").length,
        queued: p.queued, playing: p.sampleNow() !== null,
      };
    });
  });
  p.onEvent((ev) => { if (ev.event_type === "update") showTranscript(ev.transcript || []); });
  p.start();
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
