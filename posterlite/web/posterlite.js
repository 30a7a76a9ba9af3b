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
// loadConfig reads it with a size bound and checks every field (checkConfig, below).

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

// Scores in the model's genre order; a model whose outputs are not the config's genres is
// an error (never scores shown under the wrong names).
function checkedScores(scores, count) {
  if (scores.length !== count) {
    throw new Error(`the model gives ${scores.length} scores but model.json names ${count} genres`);
  }
  return scores;
}

// MediaPipe leaves out categories scored below scoreThreshold (1e-9): those stay 0.
function sortedScores(categories, count) {
  const scores = new Float32Array(count);
  for (const c of categories) {
    if (!(Number.isInteger(c.index) && c.index >= 0 && c.index < count)) {
      throw new Error(`the model gives a score for output ${c.index} but model.json names ${count} genres`);
    }
    scores[c.index] = c.score;
  }
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
      return checkedScores(await classifier.classify(image), config.genres.length);
    },
  };
}

// --------------------------------------------------------------------- the page's config
// model.json is written by posterlite from a model's metadata, but a page folder is only
// files that anyone may edit, and the metadata is whatever the model's author wrote. So the
// page treats every value as data: it is read with a size bound, checked here (types,
// ranges, lengths) and copied into a fresh object of known fields; labels, names and
// versions are only ever shown with textContent (app.js). A bad file is one Error whose
// message says what is wrong, in words: the page shows it as text.
export const LIMITS = Object.freeze({
  configBytes: 4 << 20, // model.json: 256 LUT values + labels is a few kB
  modelBytes: 512 << 20, // model.tflite
  genres: 10000,
  textChars: 256, // one label, the name, the version, a file name
  size: 1024, // input side in pixels
  threads: 64,
});
const RUNTIMES = ["litert", "mediapipe"];
const INPUT_DTYPES = ["uint8", "float32"];
// A file beside model.json, never a URL or a path: the page only fetches its own files.
const MODEL_FILE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.tflite$/;

export class ConfigError extends Error {
  constructor(message) {
    super(`model.json: ${message}`);
    this.name = "ConfigError";
  }
}

function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value, what, { optional = false } = {}) {
  if (optional && (value === undefined || value === null)) return "";
  if (typeof value !== "string") throw new ConfigError(`${what} is not text`);
  if (value.length > LIMITS.textChars) throw new ConfigError(`${what} is longer than ${LIMITS.textChars} characters`);
  return value;
}

function number(value, what, low, high) {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new ConfigError(`${what} is not a finite number`);
  if (value < low || value > high) throw new ConfigError(`${what} is outside [${low}, ${high}]`);
  return value;
}

function integer(value, what, low, high) {
  number(value, what, low, high);
  if (!Number.isInteger(value)) throw new ConfigError(`${what} is not a whole number`);
  return value;
}

function list(value, what, low, high) {
  if (!Array.isArray(value)) throw new ConfigError(`${what} is not a list`);
  if (value.length < low || value.length > high) {
    throw new ConfigError(`${what} has ${value.length} entries (${low === high ? low : `${low} to ${high}`} expected)`);
  }
  return value;
}

function genresOf(value) {
  const genres = list(value, "genres", 1, LIMITS.genres).map((genre, k) => {
    const label = text(genre, `genre ${k + 1}`);
    if (!label.trim()) throw new ConfigError(`genre ${k + 1} is empty`);
    return label;
  });
  const seen = new Set();
  genres.forEach((genre, k) => {
    if (seen.has(genre)) throw new ConfigError(`genre ${k + 1} repeats an earlier genre`);
    seen.add(genre);
  });
  return genres;
}

// The checked config: only known fields, each of the type and range the page relies on.
export function checkConfig(raw) {
  if (!isRecord(raw)) throw new ConfigError("not a JSON object");
  const genres = genresOf(raw.genres);
  const thresholds = list(raw.thresholds, "thresholds", genres.length, genres.length).map((t, k) =>
    number(t, `threshold ${k + 1}`, 0, 1),
  );
  const runtime = raw.runtime;
  if (!RUNTIMES.includes(runtime)) throw new ConfigError(`runtime is not one of ${RUNTIMES.join(", ")}`);
  if (!INPUT_DTYPES.includes(raw.input_dtype)) throw new ConfigError(`input_dtype is not one of ${INPUT_DTYPES.join(", ")}`);
  const model = text(raw.model, "model");
  if (!MODEL_FILE.test(model)) throw new ConfigError("model is not a .tflite file name beside model.json");
  const lut = list(raw.input_lut, "input_lut", 256, 256).map((v, k) => number(v, `input_lut[${k}]`, -1e6, 1e6));
  const versions = isRecord(raw.runtime_versions) ? raw.runtime_versions : {};
  const sha256 = text(raw.sha256, "sha256", { optional: true });
  if (!/^[0-9a-f]*$/.test(sha256)) throw new ConfigError("sha256 is not hexadecimal");
  return Object.freeze({
    model,
    file: text(raw.file, "file", { optional: true }),
    sha256,
    name: text(raw.name, "name", { optional: true }),
    version: text(raw.version, "version", { optional: true }),
    genres: Object.freeze(genres),
    thresholds: Object.freeze(thresholds),
    default_threshold: raw.default_threshold === undefined ? 0.5 : number(raw.default_threshold, "default_threshold", 0, 1),
    size: integer(raw.size, "size", 1, LIMITS.size),
    input_dtype: raw.input_dtype,
    input_lut: Object.freeze(lut),
    output_scale: number(raw.output_scale, "output_scale", 0, 1e6),
    output_zero_point: integer(raw.output_zero_point, "output_zero_point", -(2 ** 31), 2 ** 31 - 1),
    runtime,
    runtime_versions: Object.freeze(
      Object.fromEntries(RUNTIMES.map((r) => [r, text(versions[r], `runtime_versions.${r}`, { optional: true })])),
    ),
    threads: raw.threads === undefined ? 0 : integer(raw.threads, "threads", 0, LIMITS.threads),
  });
}

// At most `limit` bytes of a response body; a longer body is an error, not read further.
export async function readBounded(response, limit, what) {
  const declared = Number(response.headers.get("content-length"));
  if (declared > limit) throw new Error(`${what} is larger than ${limit} bytes`);
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw new Error(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

export function parseConfig(bytes) {
  let source;
  try {
    source = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError("not UTF-8 text");
  }
  let raw;
  try {
    raw = JSON.parse(source);
  } catch {
    throw new ConfigError("not valid JSON");
  }
  return checkConfig(raw);
}

export async function loadConfig(url = "model.json") {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return parseConfig(await readBounded(response, LIMITS.configBytes, url));
}

export async function loadModelBytes(config) {
  const response = await fetch(config.model);
  if (!response.ok) throw new Error(`${config.model}: HTTP ${response.status}`);
  return readBounded(response, LIMITS.modelBytes, config.model);
}

// Genres at or above their threshold, in model order.
export function decide(scores, thresholds) {
  const chosen = [];
  for (let k = 0; k < scores.length; k++) if (scores[k] >= thresholds[k]) chosen.push(k);
  return chosen;
}
