// The user page: pick or shoot a poster, see its genres. Everything runs locally.
import { createClassifier, decide, decode, loadConfig, loadModelBytes, toModelPixels } from "./posterlite.js";

const $ = (id) => document.getElementById(id);
window.plTimes = {};

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $("status").textContent = message;
}

function render(config, scores, ms) {
  const chosen = decide(scores, config.thresholds);
  const rows = config.genres.map((genre, k) => {
    const on = chosen.includes(k);
    const pct = (100 * scores[k]).toFixed(1);
    const cut = (100 * config.thresholds[k]).toFixed(1);
    return `<tr class="${on ? "on" : ""}"><td class="genre">${genre}</td>
      <td><div class="bar"><div class="fill" style="width:${pct}%"></div>
      <div class="cut" style="left:${cut}%" title="threshold ${config.thresholds[k].toFixed(2)}"></div></div></td>
      <td class="score">${scores[k].toFixed(2)}</td></tr>`;
  });
  $("scores").innerHTML = rows.join("");
  const names = chosen.map((k) => config.genres[k]);
  $("verdict").textContent = names.length ? names.join(" · ") : "No genre above its threshold";
  window.plLast = {
    scores: Array.from(scores),
    genres: names,
    genres_at_05: config.genres.filter((_, k) => scores[k] >= 0.5),
    ms,
  };
  setState("shown", `Done in ${Math.round(ms)} ms on this device.`);
}

async function main() {
  const config = await loadConfig();
  window.plTimes.config = performance.now();
  const version = config.version ? ` v${config.version}` : "";
  $("model").textContent = `${config.name}${version} · ${config.genres.length} genres · ${config.size}px input`;
  const bytes = loadModelBytes(config).then((data) => {
    window.plTimes.model = performance.now();
    return data;
  });
  const classifier = await createClassifier(config, bytes);
  const label = config.runtime === "litert" ? "LiteRT.js" : "MediaPipe Tasks for Web";
  const info = classifier.info || {};
  window.plRuntime = info; // which .wasm loaded, isolation, threads (read by the tests)
  const threads = `${info.threads || 1} thread${info.threads > 1 ? "s" : ""}`;
  $("versions").textContent = `Model ${config.file} (sha256 ${config.sha256}), ${label} ${config.runtime_versions[config.runtime]}, ${threads}.`;
  window.plTimes.ready = performance.now();
  setState("ready", "Ready: take a photo of a poster or choose one.");

  async function onFile(event) {
    const file = event.target.files[0];
    if (!file) return;
    const start = performance.now();
    setState("busy", "Looking at the poster…");
    try {
      const bitmap = await decode(file);
      const scores = await classifier.scores(toModelPixels(bitmap, config.size));
      bitmap.close();
      const preview = $("preview");
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
      render(config, scores, performance.now() - start);
    } catch (error) {
      setState("error", `Could not read this image: ${error.message}`);
    }
    event.target.value = "";
  }
  $("file").addEventListener("change", onFile);
  $("camera").addEventListener("change", onFile);
}

main().catch((error) => setState("error", `Cannot load the model: ${error.message || error}`));
