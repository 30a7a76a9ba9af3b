// posterlite in a browser: load a genre .tflite with MediaPipe Tasks for Web or LiteRT.js
// and turn an image into per-genre scores. Shared by the user page (index.html) and the
// benchmark page (bench.html), so the bench measures exactly the code the page ships.
//
// `config` is written by `posterlite web` / `posterlite bench --target browser`
// (posterlite/browser.py) from the model's own metadata and LiteRT interpreter:
//   {model: "model.tflite", name, version, genres: [...], thresholds: [...],
//    default_threshold, size, input_dtype: "uint8"|"float32",
//    input_lut: [256 values: pixel -> input tensor value, from posterlite's runtime],
//    output_scale, output_zero_point, runtime: "mediapipe"|"litert", vendor: "vendor"}

// Pixels the model sees: the whole image stretched to size x size (aspect not kept, no
// crop), like posterlite's preprocess.load_poster; the browser's bilinear scaler stands in
// for Pillow's (the measured difference is in benchmarks/results/browser_parity.md).
export function toModelPixels(source, size) {
  const canvas = new OffscreenCanvas(size, size);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "medium";
  context.fillStyle = "#ffffff"; // transparency composited on white, as on the host
  context.fillRect(0, 0, size, size);
  context.drawImage(source, 0, 0, size, size);
  return context.getImageData(0, 0, size, size);
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
  const wasm = new URL(`${base}/litert/litert_wasm_internal.js`, location.href).href;
  const [, bytes] = await Promise.all([litert.loadLiteRt(wasm), modelBytes]);
  const model = await litert.loadAndCompile(bytes, {
    accelerator: "wasm",
    cpuOptions: { numThreads: 1 },
  });
  const size = config.size;
  const Input = config.input_dtype === "uint8" ? Uint8Array : Float32Array;
  const lut = Input.from(config.input_lut);
  const input = new Input(size * size * 3);
  const scale = config.output_scale;
  const zero = config.output_zero_point;
  return {
    runtime: "litert",
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
