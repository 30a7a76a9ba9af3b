"""App-side parity: `posterlite predict` vs MediaPipe Tasks' ImageClassifier on one .tflite.

    nice -n 10 .venv/bin/python benchmarks/parity_mediapipe.py [--model M] [--limit N]

Runtime: about 2 min on a 2-core AMD EPYC for the 1,161 validation posters. `--render-only`
re-renders benchmarks/results/parity_mediapipe.md from parity_mediapipe.json in a second.

Every labelled poster of the manifest's validation split (or a seeded `--limit` sample) is
scored by
- posterlite: `preprocess.load_poster` (Pillow decode, MediaPipe's resize) + LiteRT
  (`runtime.PosterModel`), what `posterlite predict` does;
- MediaPipe `ImageClassifier` (CPU, all categories, no score cut; `posterlite.apprun`) fed
  (a) the JPEG file, decoded by MediaPipe itself (`Image.create_from_file`: stb_image), and
  (b) the Pillow-decoded full-size RGB bitmap, resized by MediaPipe (what an app does: the
  platform decodes, MediaPipe resizes).
Figures per variant: posters with the same genre set at 0.5, label agreement, mean / max
|score difference|, mAP of each side. Also measured: how often MediaPipe's decode equals
Pillow's (full-size pixels), and, on `--probe-limit` posters, whether the pixels MediaPipe
feeds the model (read back with a pixel-probe model) equal `load_poster`'s.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import results_io as rio

NAME = "parity_mediapipe"
RUNTIME = "about 2 min on 2 cores for the 1,161 validation posters"
DEFAULT_MODEL = rio.REPO / "models" / "mobilenet_v2" / "model.int8.tflite"
DEFAULT_MANIFEST = rio.REPO / "models" / "manifest.csv"
THRESHOLD = 0.5
GOALS = {"same_set": 0.99, "max_abs_diff": 2 / 256}
VARIANTS = {
    "file": "MediaPipe fed the JPEG file (its own decode + resize)",
    "bitmap": "MediaPipe fed the Pillow-decoded bitmap (its own resize)",
}


def _posters(manifest: Path, split: str, limit: int | None) -> list:
    from posterlite.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if r.split == split and r.genres]
    rows = [r for r in rows if Path(r.path).is_file()]
    if limit and limit < len(rows):
        rows = random.Random(0).sample(rows, limit)
    return rows


def _variant_figures(truth: np.ndarray, ours: np.ndarray, theirs: np.ndarray, genres) -> dict:
    from posterlite.metrics import evaluate

    ours_set, theirs_set = ours >= THRESHOLD, theirs >= THRESHOLD
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    worst = diff.max(axis=1)
    return {
        "posters": int(len(ours)),
        "same_set": float((ours_set == theirs_set).all(axis=1).mean()),
        "label_agreement": float((ours_set == theirs_set).mean()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
        "posters_with_any_diff": int((worst > 0).sum()),
        "map_posterlite": evaluate(truth, ours, genres).mean_average_precision,
        "map_mediapipe": evaluate(truth, theirs, genres).mean_average_precision,
    }


def measure(args, argv: list[str]) -> dict:
    from tqdm import tqdm

    from posterlite import apprun
    from posterlite.fileio import sha256_file
    from posterlite.genres import GenreScheme
    from posterlite.preprocess import PosterDecodeError, decode_rgb, load_poster, resize_pixels
    from posterlite.runtime import PosterModel

    started = time.perf_counter()
    env = rio.environment()
    env["libraries"]["mediapipe"] = apprun.import_mediapipe().__version__
    model_path = Path(args.model)
    if not model_path.is_file():
        raise SystemExit(f"error: model not found: {rio.rel(model_path)}")
    rows = _posters(Path(args.manifest), args.split, args.limit)
    if not rows:
        raise SystemExit(f"error: no labelled {args.split} posters in {rio.rel(args.manifest)}")
    model = PosterModel.load(model_path)
    scheme = GenreScheme(names=model.genres, catch_all=None)
    kept, truth, ours, scores = [], [], [], {v: [] for v in VARIANTS}
    decode = {"equal": 0, "shape_differs": 0, "max_abs_diff": 0, "sum_mean_abs_diff": 0.0}
    skipped: dict[str, int] = {}
    with apprun.AppClassifier.open(model_path) as app:
        assert app.labels == model.genres, (app.labels, model.genres)
        for row in tqdm(rows, desc="posters", unit="poster"):
            try:
                bitmap = decode_rgb(row.path)
            except PosterDecodeError as exc:
                skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
                continue
            try:
                mp_image = app.load_file(row.path)
                file_scores = app.classify_image(mp_image)
                bitmap_scores = app.classify_pixels(bitmap)
            except apprun.AppRunError:
                skipped["refused by MediaPipe"] = skipped.get("refused by MediaPipe", 0) + 1
                continue
            kept.append(row)
            truth.append(scheme.to_multi_hot(row.genres))
            ours.append(model.predict_pixels(resize_pixels(bitmap, model.input_size))[0])
            scores["file"].append(file_scores)
            scores["bitmap"].append(bitmap_scores)
            theirs_pixels = np.asarray(mp_image.numpy_view())
            if theirs_pixels.shape != bitmap.shape:
                decode["shape_differs"] += 1
                continue
            d = np.abs(theirs_pixels.astype(np.int16) - bitmap.astype(np.int16))
            decode["equal"] += int(not d.any())
            decode["max_abs_diff"] = max(decode["max_abs_diff"], int(d.max()))
            decode["sum_mean_abs_diff"] += float(d.mean())
        probe = _probe(app, kept[: args.probe_limit], model.input_size, load_poster, decode_rgb)
    truth_a, ours_a = np.stack(truth), np.stack(ours)
    variants = {
        v: _variant_figures(truth_a, ours_a, np.stack(s), model.genres) for v, s in scores.items()
    }
    compared = len(kept) - decode["shape_differs"]
    return {
        "command": rio.command("parity_mediapipe.py", argv),
        "environment": env,
        "wall_time_s": time.perf_counter() - started,
        "model": rio.rel(model_path),
        "model_sha256": sha256_file(model_path),
        "model_input": {"size": model.input_size, "dtype": str(model.input_dtype)},
        "output_quantization": list(model.output_quant),
        "manifest": rio.rel(args.manifest),
        "split": args.split,
        "limit": args.limit,
        "posters_asked": len(rows),
        "posters_compared": len(kept),
        "skipped": skipped,
        "threshold": THRESHOLD,
        "goals": GOALS,
        "variants": variants,
        "decode": {
            "posters": compared,
            "equal": decode["equal"],
            "max_abs_diff": decode["max_abs_diff"],
            "mean_abs_diff": decode["sum_mean_abs_diff"] / max(compared, 1),
            "shape_differs": decode["shape_differs"],
        },
        "probe": probe,
    }


def _probe(app, rows: list, size: int, load_poster, decode_rgb) -> dict:
    """Pixels MediaPipe feeds the model (read back with a pixel probe) vs posterlite's."""
    import tempfile

    from tqdm import tqdm

    from posterlite import apprun
    from posterlite.preprocess import resize_pixels

    out = {"posters": len(rows), "size": size, "bitmap_exact": 0, "file_resize_exact": 0}
    if not rows:
        return out
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.tflite"
        path.write_bytes(apprun.build_pixel_probe(size))
        with apprun.AppClassifier.open(path) as probe:
            for row in tqdm(rows, desc="pixel probe", unit="poster"):
                bitmap = decode_rgb(row.path)
                fed = apprun.probe_pixels(probe, probe.to_image(bitmap), size)
                out["bitmap_exact"] += int(np.array_equal(fed, load_poster(row.path, size)))
                image = app.load_file(row.path)
                fed = apprun.probe_pixels(probe, image, size)
                own = resize_pixels(np.asarray(image.numpy_view())[..., :3], size)
                out["file_resize_exact"] += int(np.array_equal(fed, own))
    return out


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render(payload: dict) -> str:
    goals = payload["goals"]
    lines = rio.header("App-side parity: posterlite predict vs MediaPipe Tasks", payload, RUNTIME)
    steps = payload["output_quantization"][0] or 0
    lines += [
        f"Model: `{payload['model']}` (input {payload['model_input']['size']} px "
        f"{payload['model_input']['dtype']}; sha256 {payload['model_sha256'][:12]}). Posters: "
        f"{payload['posters_compared']} compared of {payload['posters_asked']} labelled "
        f"`{payload['split']}` posters of `{payload['manifest']}`"
        + (f" (seeded sample of {payload['limit']})" if payload.get("limit") else "")
        + (
            "; skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(payload["skipped"].items()))
            if payload["skipped"]
            else ""
        )
        + ".",
        "",
        f"posterlite side: `load_poster` + LiteRT (what `posterlite predict` computes). Genre "
        f"sets at {payload['threshold']}. Goals: same set on >= {_pct(goals['same_set'])} of "
        f"posters and max |score difference| <= {goals['max_abs_diff']:.4f}"
        + (
            f" ({goals['max_abs_diff'] / steps:.0f} output steps of 1/{1 / steps:.0f})"
            if steps
            else ""
        )
        + ".",
        "",
        "| MediaPipe fed with | same genre set | label agreement | mean abs diff | max abs diff "
        "| posters with any diff | mAP posterlite | mAP MediaPipe | goals |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, label in VARIANTS.items():
        v = payload["variants"][key]
        ok = v["same_set"] >= goals["same_set"] and v["max_abs_diff"] <= goals["max_abs_diff"]
        lines.append(
            f"| {label} | {_pct(v['same_set'])} | {_pct(v['label_agreement'])} | "
            f"{v['mean_abs_diff']:.4f} | {v['max_abs_diff']:.4f} | {v['posters_with_any_diff']} "
            f"| {v['map_posterlite']:.4f} | {v['map_mediapipe']:.4f} | {rio.verdict(ok)} |"
        )
    d, p = payload["decode"], payload["probe"]
    lines += [
        "",
        f"Decode: MediaPipe's own JPEG decode equals Pillow's on {d['equal']} of {d['posters']} "
        f"posters (full-size pixels; max |difference| {d['max_abs_diff']}, mean "
        f"{d['mean_abs_diff']:.3f} levels; {d['shape_differs']} with another shape).",
        "",
        f"Resize, read back with a pixel-probe model at {p['size']} px on {p['posters']} "
        f"posters: MediaPipe's input equals `load_poster` for the Pillow bitmap on "
        f"{p['bitmap_exact']} of {p['posters']}; for the file, MediaPipe's input equals "
        f"`resize_pixels` of MediaPipe's own decode on {p['file_resize_exact']} of "
        f"{p['posters']}.",
        "",
        rio.note(
            "MediaPipe's Python `Image.create_from_file` decodes with stb_image; apps hand "
            "MediaPipe a bitmap from the platform decoder (Android BitmapFactory: "
            "libjpeg-turbo, the library Pillow uses -- not checked on a device here; iOS ImageIO; "
            "browsers their own), so the bitmap row is "
            "the app-side figure and the file row measures stb_image's decode against "
            "libjpeg-turbo's."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="the .tflite both sides score"
    )
    parser.add_argument(
        "--manifest", type=Path, default=DEFAULT_MANIFEST, help="labelled manifest (CSV)"
    )
    parser.add_argument("--split", default="val", help="manifest split to score")
    parser.add_argument("--limit", type=int, default=None, help="seeded sample of N posters")
    parser.add_argument(
        "--probe-limit",
        type=int,
        default=10,
        help="posters whose model input is read back through a pixel probe (~3 s each)",
    )
    parser.add_argument(
        "--record",
        default=NAME,
        help=f"record name: writes <record>.json / .md (default {NAME}; e.g. parity_mediapipe_ensemble "
        "for the ensemble's file, so the default model's record stays)",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        payload = rio.load_json(args.results, args.record)
    else:
        payload = measure(args, argv)
        rio.save_json(args.results, args.record, payload)
    text = render(payload)
    rio.save_markdown(args.results, args.record, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
