// posterlite in a browser: load a genre .tflite with MediaPipe Tasks for Web or LiteRT.js
// and turn an image into per-genre scores. Shared by the user page (index.html) and the
// benchmark page (bench.html), so the bench measures exactly the code the page ships.
//
// `config` is written by `posterlite web` / `posterlite bench --target browser`
// (posterlite/browser.py) from the model's own metadata and LiteRT interpreter:
//   {model: "model.tflite", name, version, genres: [...], thresholds: [...],
//    default_threshold, size, input_dtype: "uint8"|"float32",
//    input_lut: [256 values: pixel -> input tensor value, from posterlite's runtime],
//    output_scale, output_zero_point, runtime: "mediapipe"|"litert", vendor: "vendor",
//    threads: LiteRT.js threads (0: up to 4, at most the device's cores; used only in a
//             cross-origin isolated page, else 1)}

// Pixels the model sees: the whole image stretched to size x size (aspect not kept, no
// crop) exactly as posterlite's preprocess.resize_pixels does it, which is MediaPipe Tasks'
// CPU resize: output pixel i samples source coordinate i * source / size (no half-pixel
// shift) rounded half-to-even to 1/32 px, the 2x2 neighbours (clamped at the border) blended
// with integer weights and rounded once, (sum + 512) >> 10. Integer arithmetic throughout,
// so the page's pixels are bit-identical to the host's for the same decoded image
// (tests/test_browser.py checks it in Chromium).
const COORD_BITS = 5;
const COORD_SCALE = 1 << COORD_BITS;

function taps(size, source) {
  const first = new Int32Array(size);
  const second = new Int32Array(size);
  const frac = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const numerator = i * source * COORD_SCALE; // exact: far below 2^53
    let fixed = Math.floor(numerator / size);
    const remainder = numerator - fixed * size;
    if (2 * remainder > size || (2 * remainder === size && fixed % 2 === 1)) fixed += 1;
    const base = fixed >> COORD_BITS;
    first[i] = Math.min(base, source - 1);
    second[i] = Math.min(base + 1, source - 1);
    frac[i] = fixed & (COORD_SCALE - 1);
  }
  return [first, second, frac];
}

// RGBA bytes (width x height) -> ImageData (size x size), alpha 255.
export function resizePixels(rgba, width, height, size) {
  const [x0, x1, fx] = taps(size, width);
  const [y0, y1, fy] = taps(size, height);
  const out = new Uint8ClampedArray(size * size * 4);
  const row = new Int32Array(width * 3);
  for (let y = 0; y < size; y++) {
    const top = y0[y] * width * 4;
    const bottom = y1[y] * width * 4;
    const wb = fy[y];
    const wt = COORD_SCALE - wb;
    for (let x = 0, i = 0; x < width; x++, i += 3) {
      const a = top + 4 * x;
      const b = bottom + 4 * x;
      row[i] = rgba[a] * wt + rgba[b] * wb;
      row[i + 1] = rgba[a + 1] * wt + rgba[b + 1] * wb;
      row[i + 2] = rgba[a + 2] * wt + rgba[b + 2] * wb;
    }
    for (let x = 0; x < size; x++) {
      const l = 3 * x0[x];
      const r = 3 * x1[x];
      const wr = fx[x];
      const wl = COORD_SCALE - wr;
      const o = 4 * (y * size + x);
      out[o] = (row[l] * wl + row[r] * wr + 512) >> 10;
      out[o + 1] = (row[l + 1] * wl + row[r + 1] * wr + 512) >> 10;
      out[o + 2] = (row[l + 2] * wl + row[r + 2] * wr + 512) >> 10;
      out[o + 3] = 255;
    }
  }
  return new ImageData(out, size, size);
}

// A decoded image (ImageBitmap, <img>, canvas, ImageData) -> the model's size x size pixels.
export function toModelPixels(source, size) {
  if (source.data) return resizePixels(source.data, source.width, source.height, size);
  const { width, height } = source;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.fillStyle = "#ffffff"; // transparency composited on white, as on the host
  context.fillRect(0, 0, width, height);
  context.drawImage(source, 0, 0); // 1:1, no scaling: the decoder's pixels as they are
  return resizePixels(context.getImageData(0, 0, width, height).data, width, height, size);
}

// A Blob (file, fetch) -> decoded bitmap, EXIF orientation applied as on the host.
export async function decode(blob) {
  return createImageBitmap(blob, { imageOrientation: "from-image" });
}

function sortedScores(categories, count) {
  const scores = new Float32Array(count);
  for (const c of categories) scores[c.index] = c.score;
  return scores;
}

// What this browser offers WebAssembly, probed in the page itself (tiny modules from
// LiteRT.js's own feature checks): SIMD128, relaxed SIMD, threads (shared memory + atomics,
// which also need a cross-origin isolated page: COOP same-origin + COEP require-corp), JSPI.
const PROBE_SIMD = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11];
const PROBE_RELAXED_SIMD = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11];
const PROBE_ATOMICS = [0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0, 254, 16, 2, 0, 26, 11];

function validates(bytes) {
  try {
    return WebAssembly.validate(new Uint8Array(bytes));
  } catch {
    return false;
  }
}

export function wasmEnvironment() {
  const isolated = self.crossOriginIsolated === true;
  return {
    cross_origin_isolated: isolated,
    simd: validates(PROBE_SIMD),
    relaxed_simd: validates(PROBE_RELAXED_SIMD),
    threads_supported: isolated && typeof SharedArrayBuffer === "function" && validates(PROBE_ATOMICS),
    jspi: "Suspending" in WebAssembly,
    hardware_concurrency: navigator.hardwareConcurrency || 1,
  };
}

// The .wasm files this page has fetched so far (Resource Timing): which build of a runtime
// actually loaded, read from the browser rather than assumed from the code that asks for it.
function fetchedWasm(folder) {
  return performance
    .getEntriesByType("resource")
    .map((entry) => entry.name.split("?")[0])
    .filter((name) => name.endsWith(".wasm") && name.includes(`/${folder}/`))
    .map((name) => name.slice(name.lastIndexOf("/") + 1));
}

// Threads a page asks LiteRT.js for: config.threads (0 or absent: up to 4, at most the
// device's cores), used only where the browser can run threads; else one.
function wantedThreads(config, env) {
  const asked = config.threads ? config.threads : Math.min(4, env.hardware_concurrency);
  return Math.max(1, asked);
}

async function mediapipeClassifier(config, modelBytes, base) {
  const [vision, bytes] = await Promise.all([import(`${base}/mediapipe/vision_bundle.mjs`), modelBytes]);
  // The fileset is named directly (SIMD build only): FilesetResolver would probe and
  // fetch more files than are vendored.
  const fileset = {
    wasmLoaderPath: new URL(`${base}/mediapipe/vision_wasm_internal.js`, location.href).href,
    wasmBinaryPath: new URL(`${base}/mediapipe/vision_wasm_internal.wasm`, location.href).href,
  };
  const classifier = await vision.ImageClassifier.createFromOptions(fileset, {
    baseOptions: { modelAssetBuffer: bytes, delegate: "CPU" },
    runningMode: "IMAGE",
    maxResults: -1,
    // Every genre's score is wanted: 0 would fall back to the threshold in the metadata.
    scoreThreshold: 1e-9,
  });
  return {
    runtime: "mediapipe",
    // MediaPipe Tasks for Web ships no threaded build (its WebAssembly memory is not shared)
    // and has no thread option: one thread, whatever was asked.
    info: {
      ...wasmEnvironment(),
      wasm_files: fetchedWasm("mediapipe"),
      threads_requested: config.threads || 1,
      threads: 1,
      why_not_threaded: config.threads > 1 ? "MediaPipe Tasks for Web has no threaded build" : null,
    },
    classify(image) {
      const result = classifier.classify(image);
      return sortedScores(result.classifications[0].categories, config.genres.length);
    },
    close() {
      classifier.close();
    },
  };
}

async function litertClassifier(config, modelBytes, base) {
  const litert = await import(`${base}/litert/index.js`);
  const env = wasmEnvironment();
  const wanted = wantedThreads(config, env);
  // The threaded build needs relaxed SIMD, shared memory and a cross-origin isolated page;
  // without them (a static host that does not send COOP/COEP) the page runs one thread.
  let whyNot = null;
  if (wanted > 1 && !env.cross_origin_isolated) whyNot = "page not cross-origin isolated (no COOP/COEP headers)";
  else if (wanted > 1 && !env.relaxed_simd) whyNot = "no relaxed SIMD in this browser";
  else if (wanted > 1 && !env.threads_supported) whyNot = "no WebAssembly threads in this browser";
  const threaded = wanted > 1 && whyNot === null;
  // LiteRT.js's own loader picks the build from the folder (it fetches one): with
  // {threads: true} litert_wasm_threaded_internal.js (relaxed SIMD + threads); without,
  // litert_wasm_internal.js where the browser has relaxed SIMD, else
  // litert_wasm_compat_internal.js (SIMD128 only: Safari today).
  const folder = new URL(`${base}/litert/`, location.href).href;
  const loading = litert.loadLiteRt(folder, threaded ? { threads: true } : undefined);
  const [, bytes] = await Promise.all([loading, modelBytes]);
  const threads = threaded ? wanted : 1;
  const model = await litert.loadAndCompile(bytes, {
    accelerator: "wasm",
    cpuOptions: { numThreads: threads },
  });
  let runtimeThreads = null;
  try {
    runtimeThreads = litert.getGlobalLiteRt().liteRtWasm.getThreadCount();
  } catch {
    runtimeThreads = null;
  }
  const info = {
    ...env,
    wasm_files: fetchedWasm("litert"),
    threads_requested: wanted,
    threads,
    runtime_thread_count: runtimeThreads,
    why_not_threaded: whyNot,
  };
  const size = config.size;
  const Input = config.input_dtype === "uint8" ? Uint8Array : Float32Array;
  const lut = Input.from(config.input_lut);
  const input = new Input(size * size * 3);
  const scale = config.output_scale;
  const zero = config.output_zero_point;
  return {
    runtime: "litert",
    info,
    async classify(image) {
      if (image.width !== size || image.height !== size || !image.data) {
        image = toModelPixels(image, size);
      }
      const rgba = image.data;
      for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        input[j] = lut[rgba[i]];
        input[j + 1] = lut[rgba[i + 1]];
        input[j + 2] = lut[rgba[i + 2]];
      }
      const tensor = new litert.Tensor(input, [1, size, size, 3]);
      const outputs = await model.run(tensor);
      tensor.delete();
      const raw = outputs[0].toTypedArray();
      const scores = new Float32Array(raw.length);
      for (let k = 0; k < raw.length; k++) {
        scores[k] = scale ? (raw[k] - zero) * scale : raw[k];
      }
      for (const output of outputs) output.delete();
      return scores;
    },
    close() {
      model.delete();
    },
  };
}

// The classifier for config.runtime; `classify(image)` takes ImageData / bitmap / canvas
// and resolves to Float32Array scores in the model's genre order. `modelBytes` may be a
// promise: the runtime's WebAssembly then loads while the model downloads.
export async function createClassifier(config, modelBytes, base = "./vendor") {
  const make = config.runtime === "litert" ? litertClassifier : mediapipeClassifier;
  const classifier = await make(config, modelBytes, base);
  return {
    ...classifier,
    async scores(image) {
      return classifier.classify(image);
    },
  };
}

export async function loadConfig(url = "model.json") {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

export async function loadModelBytes(config) {
  const response = await fetch(config.model);
  if (!response.ok) throw new Error(`${config.model}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// Genres at or above their threshold, in model order.
export function decide(scores, thresholds) {
  const chosen = [];
  for (let k = 0; k < scores.length; k++) if (scores[k] >= thresholds[k]) chosen.push(k);
  return chosen;
}
