// The user page: pick or shoot a poster, see its genres. Everything runs locally.
//
// Labels, the model's name and version come from a model file (its metadata) and model.json:
// they are data, never markup. Every one of them reaches the page through textContent on
// elements built here (no innerHTML, no HTML strings, no attribute built from them), and
// the page's Content-Security-Policy (index.html) refuses inline script besides.
import { createClassifier, decide, decode, loadConfig, loadModelBytes, toModelPixels } from "./posterlite.js";

const $ = (id) => document.getElementById(id);
window.plTimes = {};

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $("status").textContent = message;
}

// An element with a class and (optionally) text; children appended in order.
function element(tag, className, text, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  node.append(...children);
  return node;
}

const percent = (value) => `${Math.min(100, Math.max(0, 100 * value)).toFixed(1)}%`;

function genreRow(genre, score, threshold, on) {
  const fill = element("div", "fill");
  fill.style.width = percent(score);
  const cut = element("div", "cut");
  cut.style.left = percent(threshold);
  cut.title = `threshold ${threshold.toFixed(2)}`;
  return element(
    "tr",
    on ? "on" : "",
    undefined,
    element("td", "genre", genre),
    element("td", "", undefined, element("div", "bar", undefined, fill, cut)),
    element("td", "score", score.toFixed(2)),
  );
}

function render(config, scores, ms) {
  const chosen = decide(scores, config.thresholds);
  const rows = config.genres.map((genre, k) => genreRow(genre, scores[k], config.thresholds[k], chosen.includes(k)));
  $("scores").replaceChildren(...rows);
  const names = chosen.map((k) => config.genres[k]);
  const verdict = $("verdict");
  if (names.length) {
    // One isolated span per label: a label's own direction marks stay inside it.
    verdict.replaceChildren(...names.flatMap((name, i) => [...(i ? [" · "] : []), element("span", "label", name)]));
  } else {
    verdict.textContent = "No genre above its threshold";
  }
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
      setState("error", `Could not read this image: ${firstLine(error)}`);
    }
    event.target.value = "";
  }
  $("file").addEventListener("change", onFile);
  $("camera").addEventListener("change", onFile);
}

// What went wrong, as one line of text (runtimes' messages may carry stack traces).
function firstLine(error) {
  const message = error && typeof error.message === "string" ? error.message : String(error);
  return message.split("\n")[0].slice(0, 500);
}

main().catch((error) => setState("error", `Cannot load the model: ${firstLine(error)}`));
