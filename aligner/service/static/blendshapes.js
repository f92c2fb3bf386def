// A 2D avatar driven by ARKit blend-shape weights: the service's blendshapes stream, played by
// the browser client module. The mouth is a function of the weights alone (drawMouth), as a
// 3D face's morph targets would be.
import { AgentPlayer, audioWebsocketUrl, registerCall } from "/client.js";

const RATE = 24000;
const $ = (id) => document.getElementById(id);
const blend = window.blend = { state: "idle", paths: [], error: null, frames: 0, player: null };

/**
 * The mouth's SVG paths for a set of ARKit weights.
 * @param {Object<string, number>} w  weights by ARKit name (missing: 0)
 * @returns {{lips: string, inner: string, chin: string, open: number, teeth: number,
 *            tongue: number}}
 */
export function drawMouth(w) {
  const g = (k) => w[k] || 0;
  const both = (k) => (g(k + "Left") + g(k + "Right")) / 2;
  const jaw = g("jawOpen"), close = g("mouthClose");
  const round = Math.max(g("mouthFunnel"), g("mouthPucker"));
  const wide = both("mouthStretch") + 0.6 * both("mouthSmile");
  const press = both("mouthPress"), roll = (g("mouthRollLower") + g("mouthRollUpper")) / 2;
  const cx = 100, cy = 158;
  const half = 24 * (1 + 0.45 * wide - 0.45 * round);             // half the mouth's width
  const open = Math.max(0, 30 * jaw * (1 - close) + 8 * both("mouthLowerDown")
                        + 6 * both("mouthUpperUp") - 6 * press);   // the lips' gap
  const lip = Math.max(1.5, 6 * (1 - 0.7 * roll - 0.5 * press)); // lip thickness
  const corner = 4 * both("mouthSmile");                           // corners up
  const top = cy - open * 0.35 - 6 * both("mouthUpperUp");
  const bottom = cy + open * 0.65;
  const k = half * (0.55 + 0.4 * round);                           // rounder when funnelled
  const L = cx - half, R = cx + half, yc = cy - corner;
  const inner = `M${L},${yc} C${cx - k},${top} ${cx + k},${top} ${R},${yc} `
              + `C${cx + k},${bottom} ${cx - k},${bottom} ${L},${yc} Z`;
  const lips = `M${L - 2},${yc} C${cx - k},${top - lip * 1.6} ${cx + k},${top - lip * 1.6} ${R + 2},${yc} `
    + `C${cx + k},${top + 0.1} ${cx - k},${top + 0.1} ${L - 2},${yc} Z`
    + ` M${L - 2},${yc} C${cx - k},${bottom + 0.1} ${cx + k},${bottom + 0.1} ${R + 2},${yc} `
    + `C${cx + k},${bottom + lip * 1.8} ${cx - k},${bottom + lip * 1.8} ${L - 2},${yc} Z`;
  const chinY = 196 + 10 * jaw;
  const chin = `M80,${chinY - 4} Q100,${chinY + 4} 120,${chinY - 4}`;
  return { lips, inner, chin, open, teeth: open > 3 ? Math.min(1, open / 8) : 0,
           tongue: g("tongueOut") };
}

function show(names, weights, playing) {
  const w = {};
  names.forEach((n, i) => { w[n] = weights[i]; });
  const m = drawMouth(w);
  $("lips").setAttribute("d", m.lips);
  $("inner").setAttribute("d", m.inner);
  $("chin").setAttribute("d", m.chin);
  $("teeth").setAttribute("y", 158 - m.open * 0.35);
  $("teeth").style.opacity = m.teeth;
  $("tongue").setAttribute("opacity", Math.min(1, m.tongue * 2));
  $("tongue").setAttribute("cy", 158 + m.open * 0.4);
  blend.paths.push({ t: performance.now(), d: m.lips, playing, jawOpen: w.jawOpen || 0 });
  if (blend.paths.length > 5000) blend.paths.splice(0, 1000);
  const table = $("weights");
  if (table.childElementCount !== names.length * 3) {
    table.textContent = "";
    for (const n of names) {
      const label = document.createElement("span"); label.textContent = n;
      const cell = document.createElement("div"); const bar = document.createElement("div");
      bar.className = "bar"; bar.dataset.name = n; cell.append(bar);
      const value = document.createElement("span"); value.dataset.value = n;
      table.append(label, cell, value);
    }
  }
  names.forEach((n, i) => {
    table.querySelector(`[data-name="${n}"]`).style.width = `${Math.round(weights[i] * 100)}%`;
    table.querySelector(`[data-value="${n}"]`).textContent = weights[i].toFixed(2);
  });
}

async function start() {
  $("start").disabled = true;
  try {
    const ctx = new AudioContext({ sampleRate: RATE });
    await ctx.resume();
    const player = blend.player = new AgentPlayer(ctx, { sampleRate: RATE });
    player.onBlendshapes(({ names, weights, playing }) => {
      blend.frames += 1;
      show(names, weights, playing);
    });
    player.onCaption(({ text }) => { $("caption").textContent = text; });
    player.start();
    const call = await registerCall({ sample_rate: RATE });
    const ws = new WebSocket(audioWebsocketUrl(call.call_id, { enable_blendshapes: true,
                                                               enable_words: true }));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { blend.state = "live"; $("status").textContent = "live";
                        $("status").dataset.state = "live"; $("hangup").disabled = false; };
    ws.onmessage = (m) => player.receive(m.data);
    ws.onclose = (e) => { blend.state = "closed"; $("status").textContent = `closed ${e.code}`;
                          $("hangup").disabled = true; };
    $("hangup").onclick = () => ws.close(1000, "user_hangup");
  } catch (err) {
    blend.error = String(err);
    $("status").textContent = `error: ${err.message || err}`;
    $("status").dataset.state = "error";
  }
}

show([], [], false);
$("start").onclick = start;
