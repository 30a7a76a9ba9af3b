// The measurement harness behind `posterlite bench --target browser` (posterlite/browser.py):
// the same module the user page runs (posterlite.js), timed with performance.now() on the
// page's main thread, where Chromium's CPU throttling applies.
import { createClassifier, decode, loadConfig, loadModelBytes, toModelPixels } from "./posterlite.js";

// Web Workers started in this page: LiteRT.js's threaded build starts its pthread pool as
// workers, so a count > 0 shows threads exist (the latency shows whether they help).
let workersStarted = 0;
const PageWorker = window.Worker;
window.Worker = class extends PageWorker {
  constructor(...args) {
    super(...args);
    workersStarted += 1;
  }
};

// The page's decode + resize of image files, as RGB bytes (tests compare them with the host).
window.plPixels = async (job) => {
  const out = [];
  for (const url of job.posters) {
    const image = toModelPixels(await decode(await fetchBlob(url)), job.size);
    const rgb = [];
    for (let i = 0; i < image.data.length; i += 4) rgb.push(image.data[i], image.data[i + 1], image.data[i + 2]);
    out.push(rgb);
  }
  return { pixels: out };
};

function now() {
  return performance.now();
}

async function fetchBlob(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.blob();
}

// job: {config: "model.json", runtime, threads (LiteRT.js; 1 = one), posters: [url], warmup, runs,
//       pixels: url of N x S x S x 3 uint8 (host-decoded posters) or null,
//       resize: "page" (posterlite.js) | "runtime" (MediaPipe's own resize of the decoded image)}
window.plBench = async (job) => {
  const config = { ...(await loadConfig(job.config)), runtime: job.runtime, threads: job.threads || 1 };
  const size = config.size;
  const t0 = now();
  let fetched;
  const modelBytes = loadModelBytes(config).then((data) => {
    fetched = now();
    return data;
  });
  const classifier = await createClassifier(config, modelBytes);
  const ready = now();
  const blobs = await Promise.all(job.posters.map(fetchBlob));

  const prepare = (bitmap) =>
    job.resize === "runtime" && config.runtime === "mediapipe" ? bitmap : toModelPixels(bitmap, size);

  // First (cold) inference, then warm runs on one prepared poster: decode excluded.
  const image = prepare(await decode(blobs[0]));
  let start = now();
  await classifier.scores(image);
  const firstMs = now() - start;
  for (let i = 0; i < job.warmup; i++) await classifier.scores(image);
  const warm = [];
  for (let i = 0; i < job.runs; i++) {
    start = now();
    await classifier.scores(image);
    warm.push(now() - start);
  }

  // Every poster from its file bytes (in memory): decode + resize + classify.
  const endToEnd = [];
  const scores = [];
  for (const blob of blobs) {
    start = now();
    let bitmap;
    try {
      bitmap = await decode(blob);
    } catch (error) {
      endToEnd.push(null); // the browser cannot decode this file: left out, as on the host
      scores.push(null);
      continue;
    }
    const out = await classifier.scores(prepare(bitmap));
    endToEnd.push(now() - start);
    bitmap.close();
    scores.push(Array.from(out));
  }

  // Host-decoded pixels (posterlite's load_poster) as ImageData at the model size: the
  // runtime's own resize is a no-op, so this isolates the runtime.
  let pixelScores = null;
  if (job.pixels) {
    const buffer = new Uint8Array(await (await fetch(job.pixels)).arrayBuffer());
    const stride = size * size * 3;
    pixelScores = [];
    for (let n = 0; n * stride < buffer.length; n++) {
      const rgba = new Uint8ClampedArray(size * size * 4);
      for (let i = 0, j = n * stride; i < rgba.length; i += 4, j += 3) {
        rgba[i] = buffer[j];
        rgba[i + 1] = buffer[j + 1];
        rgba[i + 2] = buffer[j + 2];
        rgba[i + 3] = 255;
      }
      pixelScores.push(Array.from(await classifier.scores(new ImageData(rgba, size, size))));
    }
  }
  classifier.close();
  return {
    runtime: config.runtime,
    runtime_version: config.runtime_versions[config.runtime],
    model_fetch_ms: fetched - t0,
    model_load_ms: ready - t0,
    first_ms: firstMs,
    warm_ms: warm,
    end_to_end_ms: endToEnd,
    scores,
    pixel_scores: pixelScores,
    user_agent: navigator.userAgent,
    hardware_concurrency: navigator.hardwareConcurrency,
    wasm: { ...classifier.info, workers_started: workersStarted },
  };
};
