"""benchmarks/: every results file is rendered from the JSON beside it, byte for byte, and the
claims a renderer prints follow the data it is given (a missed target renders "missed")."""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RESULTS = BENCHMARKS / "results"
sys.path.insert(0, str(BENCHMARKS))

# results name -> the script that measures it and renders <name>.md from <name>.json
RENDERERS = {
    "arm": "arm",
    "backbone_import": "backbone_import",
    "bench": "bench_shipped",
    "bench_overhead": "bench_overhead",
    "browser_parity": "browser_parity",
    "browser_parity_ensemble": "browser_parity",
    "browser_ratio": "browser_ratio",
    "calibration_size": "calibration_size",
    "convert_formats": "convert_formats",
    "data_scan": "data_scan",
    "ensemble_candidates": "ensemble_candidates",
    "finetune_ablation": "finetune_ablation",
    "learning_curve": "learning_curve",
    "linear_probe": "linear_probe",
    "make_sample": "make_sample",
    "predict_throughput": "predict_throughput",
    "train_grid": "train_grid",
}
# Records a script writes under another name (`--record`), e.g. for another model.
SECOND_RECORDS = {"browser_parity_ensemble"}
# Results owned by scripts outside this file's list (the parity work renders and tests them).
OTHER_OWNERS = {"parity_mediapipe", "parity_mediapipe_ensemble"}


def script(name: str):
    return importlib.import_module(RENDERERS[name])


def committed(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def render_into(tmp_path: Path, name: str, payload: dict | None = None) -> str:
    """Run the script's --render-only on `payload` (default: the committed JSON) in tmp."""
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    if payload is None:
        shutil.copy(RESULTS / f"{name}.json", results / f"{name}.json")
    else:
        (results / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")
    argv = ["--render-only", "--results", str(results)]
    if name in SECOND_RECORDS:
        argv += ["--record", name]
    if name in ("bench", "arm"):
        argv.append("--no-plot")
    if name == "make_sample":
        argv += ["--out", str(tmp_path / "sample")]
    assert script(name).main(argv) == 0
    return (results / f"{name}.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------ idempotent rendering
@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_render_only_reproduces_the_committed_markdown(tmp_path, name, capsys):
    text = render_into(tmp_path, name)
    assert text == (RESULTS / f"{name}.md").read_text(encoding="utf-8")
    if name == "make_sample":
        readme = (tmp_path / "sample" / "README.md").read_text(encoding="utf-8")
        assert readme == (BENCHMARKS / "sample" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_rendering_twice_changes_nothing(tmp_path, name, capsys):
    first = render_into(tmp_path, name)
    second = render_into(
        tmp_path, name, json.loads((tmp_path / "results" / f"{name}.json").read_text())
    )
    assert first == second


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_help_names_the_command_and_runtime(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script(name).main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "benchmarks/" in out and "Runtime" in out and "--render-only" in out


# ------------------------------------------------------------- what every file carries
def test_every_results_file_has_json_and_a_renderer():
    for path in RESULTS.iterdir():
        stem = path.name.split(".")[0]
        if stem in OTHER_OWNERS:
            continue
        assert stem in RENDERERS, f"{path.name}: no script in benchmarks/ renders it"
        assert (RESULTS / f"{stem}.json").is_file(), f"{path.name}: no JSON beside it"


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_results_name_command_cpu_date_and_libraries(name):
    text = (RESULTS / f"{name}.md").read_text(encoding="utf-8")
    assert re.search(r"Reproduce: `python benchmarks/\w+\.py", text)
    for label in ("- CPU: ", "- date: ", "- libraries: "):
        assert label in text, f"{name}.md does not name its {label.strip('- :')}"


def test_no_absolute_path_of_the_machine_in_results():
    files = [p for p in RESULTS.iterdir() if p.suffix in (".md", ".json")]
    files.append(BENCHMARKS / "sample" / "README.md")
    machine = re.compile(r"(?<![\w.])/(work|root|home|tmp|Users)/")
    for path in files:
        if path.name.split(".")[0] in OTHER_OWNERS:
            continue
        text = path.read_text(encoding="utf-8")
        assert str(REPO) not in text, path.name
        assert not machine.search(text), f"{path.name}: {machine.search(text).group(0)}"


# ------------------------------------------------------------ claims follow the data
def test_train_grid_targets_follow_the_data(tmp_path):
    payload = committed("train_grid")
    missed = copy.deepcopy(payload)
    for name, row in missed["models"].items():
        if name.startswith("mobilenet"):
            row["mAP"] = min(row["mAP"], 0.5700)
    missed["grid"]["wall_time_s"] = 61 * 60
    text = render_into(tmp_path, "train_grid", missed)
    assert "| best MobileNet val mAP | 0.5700" in text and "missed by 0.0100" in text
    assert re.search(r"\| grid wall time \| 61\.0 min \| < 60 min \| missed \|", text)

    met = copy.deepcopy(payload)
    next(r for n, r in met["models"].items() if n.startswith("mobilenet"))["mAP"] = 0.61
    text = render_into(tmp_path, "train_grid", met)
    assert re.search(r"\| best MobileNet val mAP \| 0\.6100 \(\w+\) \| >= 0\.58 \| met \|", text)


def test_train_grid_smote_summary_is_computed(tmp_path):
    payload = copy.deepcopy(committed("train_grid"))
    payload["models"]["mobilenet_v2_smote"]["mAP"] = payload["models"]["mobilenet_v2"]["mAP"] + 0.02
    text = render_into(tmp_path, "train_grid", payload)
    assert "- mobilenet_v2: mAP +0.0200" in text


def test_backbone_import_explanation_is_computed(tmp_path):
    payload = copy.deepcopy(committed("backbone_import"))
    row = next(r for r in payload["rows"] if r["diagnostics"])
    row["passed"], row["top1_agreement"], row["top1_agreement_logits"] = False, 0.9, 0.9
    row["posters"] = 300
    d = row["diagnostics"]
    d["disagreeing_posters"] = 30
    d["tflite_margin_median_disagreeing"] = d["tflite_margin_median_agreeing"] = 1.0
    d["top1_agreement_exact_tflite_input"] = 0.95
    d["keras_top1_in_tflite_top3_count"] = 4
    text = render_into(tmp_path, "backbone_import", payload)
    assert f"`{row['file']}` misses the top-1 target by 15 poster(s) of 300" in text
    assert "the disagreements are not near-ties" in text
    assert "within TFLite's top-3 on 4 of the 30" in text
    assert "the input convention changes the agreement by +15 poster(s)" in text

    d["tflite_margin_median_disagreeing"] = 0.05
    d["top1_agreement_exact_tflite_input"] = 0.9
    text = render_into(tmp_path, "backbone_import", payload)
    assert "the disagreements are near-ties" in text
    assert "the input convention does not change the agreement" in text

    for r in payload["rows"]:
        r["passed"] = True
    assert "misses the top-1 target" not in render_into(tmp_path, "backbone_import", payload)


def test_bench_overhead_reports_missing_references_as_not_measured(tmp_path):
    payload = copy.deepcopy(committed("bench_overhead"))
    for name in payload["references"]:
        payload["p50_ms"].pop(name, None)
    payload["missing_references"] = sorted(
        f"../shared/pretrained/{n[len('google_') :]}.tflite" for n in payload["references"]
    )
    payload["references"] = {}
    payload["p50_ms"]["int8"] = payload["p50_ms"]["fp32"] * 0.6
    text = render_into(tmp_path, "bench_overhead", payload)
    assert "not measured (Google's reference files are absent: `../shared/pretrained/" in text
    assert re.search(
        r"\| int8 p50 / fp32 p50 \(1 thread\) \| 0\.600 \| <= 0\.50 \| missed \|", text
    )


def test_bench_ratios_follow_the_rows(tmp_path):
    payload = copy.deepcopy(committed("bench"))
    payload["rows"] = [r for r in payload["rows"] if r["kind"] != "reference"]
    text = render_into(tmp_path, "bench", payload)
    assert "Google's int8 MobileNetV2: not measured" in text
    assert "google_" not in text.split("Ratios from this run")[1].split("Note (not")[0]


def test_convert_formats_summary_follows_the_data(tmp_path):
    payload = copy.deepcopy(committed("convert_formats"))
    row = next(r for r in payload["rows"] if r["model"] == "mobilenet_v2")
    int8 = next(r for r in row["report"]["results"] if r["format"] == "int8")
    fp32 = next(r for r in row["report"]["results"] if r["format"] == "fp32")
    int8["size_bytes"] = int(fp32["size_bytes"] * 0.35)
    int8["map_delta"] = -0.02
    text = render_into(tmp_path, "convert_formats", payload)
    assert re.search(r"\| mobilenet_v2 \| 0\.3500 \(missed\) \| -0\.0200 \(missed\) \|", text)
    assert "worst int8 d mAP vs Keras -0.0200" in text
    assert "0.27-0.30x" not in text


def test_predict_throughput_target_follows_the_data(tmp_path):
    payload = copy.deepcopy(committed("predict_throughput"))
    payload["predict_seconds_total"] = payload["bare_seconds_total"] * 2
    text = render_into(tmp_path, "predict_throughput", payload)
    assert "Ratio predict / bare: **0.500**" in text and "target >= 0.80: missed" in text


def test_calibration_size_range_is_computed(tmp_path):
    payload = copy.deepcopy(committed("calibration_size"))
    payload["rows"][0]["map_delta"] = -0.5
    text = render_into(tmp_path, "calibration_size", payload)
    assert "ranges from -0.5000" in text


def test_data_scan_claims_follow_the_scan(tmp_path):
    payload = copy.deepcopy(committed("data_scan"))
    split = payload["split"]
    split["counts"]["val"]["Action"] = 0
    split["committed_sha256"] = "0" * 64
    split["rows_differing"] = 7
    kaggle = payload["sources"]["kaggle-moviegenre"]
    kaggle["not_rgb"] = kaggle["not_rgb"][:1]
    kaggle["not_rgb"][0]["in_manifest"] = False
    dup = kaggle["duplicates"]
    dup["same_genre_string"] = dup["ids_with_different_posters"] - 1
    text = render_into(tmp_path, "data_scan", payload)
    train, test = split["counts"]["train"]["Action"], split["counts"]["test"]["Action"]
    row = f"| Action | {train:,} | 0 | {test:,} | {train / (train + test):.1%} | 0.0% |"
    assert row in text
    assert "manifest **differs** from `models/manifest.csv`" in text and "7 with a diff" in text
    name = kaggle["not_rgb"][0]["file"]
    assert f"not RGB: 1: `{name}` (L); 0 of 1 are in `models/manifest.csv`" in text
    n = dup["ids_with_different_posters"]
    assert f"identical across the rows of an id: {n - 1} of {n} ids (for the others" in text

    kaggle["not_rgb"] = []
    kaggle["skipped_counts"]["truncated"] = 3
    text = render_into(tmp_path, "data_scan", payload)
    assert "not RGB: none" in text.split("## imdb-7k")[0]
    assert "| skipped `truncated` | 3 |" in text
    assert "| labelled posters that fail to decode | 3 |" in text


def test_browser_parity_records_no_machine_path(tmp_path):
    browser_parity = script("browser_parity")
    outside = tmp_path / "helper" / "mobilenet_v2.int8.tflite"
    assert browser_parity._rel(outside) == "<outside the repository>/mobilenet_v2.int8.tflite"
    inside = REPO / "models" / "mobilenet_v2" / "model.int8.tflite"
    assert browser_parity._rel(inside) == "models/mobilenet_v2/model.int8.tflite"
    table = f"accuracy on {REPO}/benchmarks/sample, model {outside}"
    scrubbed = browser_parity._scrub(table, outside)
    assert scrubbed == (
        "accuracy on benchmarks/sample, model <outside the repository>/mobilenet_v2.int8.tflite"
    )
    payload = copy.deepcopy(committed("browser_parity"))
    payload["model"] = browser_parity._rel(outside)
    text = render_into(tmp_path, "browser_parity", payload)
    assert "Model `<outside the repository>/mobilenet_v2.int8.tflite` (sha256 " in text
    assert str(tmp_path) not in text


def test_stale_results_say_so(tmp_path):
    payload = copy.deepcopy(committed("linear_probe"))
    payload["stale"] = "the preprocessing changed"
    text = render_into(tmp_path, "linear_probe", payload)
    assert "**stale: not yet regenerated by `python benchmarks/linear_probe.py" in text
    payload.pop("stale")
    payload["environment"] = None
    text = render_into(tmp_path, "linear_probe", payload)
    assert "- CPU: not recorded" in text and "- date: not recorded" in text


# --------------------------------------------------------- browser_ratio with --formats
def browser_ratio_payload(browser_ms: dict, native_ms: dict) -> dict:
    """The committed record's machine facts with synthetic timings: `browser_ms` maps
    (format, runtime, threads) to that page's p50 per round (a number: every round),
    `native_ms` (format, threads) to native LiteRT's p50 every round."""
    payload = copy.deepcopy(committed("browser_ratio"))
    rounds = payload["rounds"]
    template = {(e["runtime"], e["threads_requested"]): e for e in payload["browser"]}

    def per_round(value):
        return list(value) if isinstance(value, list | tuple) else [float(value)] * rounds

    formats = list(dict.fromkeys(f for f, _, _ in browser_ms))
    payload["schema"] = 2
    payload["formats"] = formats
    payload["models"] = {
        f: {
            "path": f"models/mobilenet_v2/mobilenet_v2.{f}.tflite",
            "sha256": "0" * 12,
            "size_bytes": 3_000_000,
            "native_scores": [0.5] * 6,
        }
        for f in formats
    }
    payload["native_p50_ms"] = {
        f: {str(t): per_round(native_ms[(f, t)]) for t in (1, 2)} for f in formats
    }
    payload["browser"] = [
        {**copy.deepcopy(template[(runtime, threads)]), "format": f, "p50_ms": per_round(ms)}
        for (f, runtime, threads), ms in browser_ms.items()
    ]
    return payload


INT8_NATIVE = {("int8", 1): 4.0, ("int8", 2): 4.0}


def test_browser_ratio_int8_verdict_follows_the_data(tmp_path):
    int8 = {
        ("int8", "mediapipe", 1): 20.0,
        ("int8", "litert", 1): 12.0,
        ("int8", "litert", 2): 18.0,
    }
    text = render_into(tmp_path, "browser_ratio", browser_ratio_payload(int8, INT8_NATIVE))
    assert re.search(r"\| int8 \| LiteRT\.js \| [^|]+ \| 1 / 1 \| true \| 12\.00 \| 4\.00 \| "
                     r"3\.00x \| 3\.00x \| 3\.00, 3\.00, 3\.00, 3\.00, 3\.00 \| met \|", text)  # fmt: skip
    assert re.search(r"\| int8 \| MediaPipe web \| [^|]+ \| 1 / 1 \| true \| 20\.00 \| 4\.00 \| "
                     r"5\.00x \| 5\.00x \| [^|]+ \| missed \|", text)  # fmt: skip
    assert "Overall (int8): **met** by LiteRT.js at 1 thread(s) (3.00x)." in text
    assert "Other formats against the int8 page" not in text

    int8[("int8", "litert", 1)] = 17.0
    text = render_into(tmp_path, "browser_ratio", browser_ratio_payload(int8, INT8_NATIVE))
    assert "Overall (int8): **missed**: the best is LiteRT.js at 1 thread(s), 4.25x." in text
    assert "| met |" not in text


def test_browser_ratio_other_formats_faster_or_slower_than_the_int8_page(tmp_path):
    timings = {
        ("int8", "mediapipe", 1): 20.0,
        ("int8", "litert", 1): 12.0,
        ("int8", "litert", 2): 18.0,
        ("fp32", "mediapipe", 1): 16.0,  # faster than the int8 page: 0.80x
        ("fp32", "litert", 1): 24.0,  # slower: 2.00x
        ("fp32", "litert", 2): [10.0, 10.0, 10.0, 30.0, 30.0],  # faster in 3 of 5 rounds
    }
    native = {**INT8_NATIVE, ("fp32", 1): 8.0, ("fp32", 2): 8.0}
    text = render_into(tmp_path, "browser_ratio", browser_ratio_payload(timings, native))
    # ratio to native fp32 (16 / 8) and to native int8 (16 / 4); never a 4x verdict
    assert re.search(
        r"\| fp32 \| MediaPipe web \| [^|]+ \| 1 / 1 \| true \| 16\.00 \| 8\.00 \| 2\.00x \| "
        r"4\.00x \| [^|]+ \| faster than the int8 page \(0\.80x its p50; faster in 5 of 5 "
        r"rounds\) \|",
        text,
    )
    assert re.search(
        r"\| fp32 \| LiteRT\.js \| [^|]+ \| 1 / 1 \| true \| 24\.00 \| 8\.00 \| 3\.00x \| "
        r"6\.00x \| [^|]+ \| slower than the int8 page \(2\.00x its p50; faster in 0 of 5 "
        r"rounds\) \|",
        text,
    )
    assert "faster than the int8 page (0.56x its p50; faster in 3 of 5 rounds)" in text
    fp32_rows = [
        line for line in text.splitlines() if line.startswith("| fp32 | ") and "x |" in line
    ]
    assert len(fp32_rows) == 3 and not any(r.endswith(("| met |", "| missed |")) for r in fp32_rows)
    assert (
        "faster: fp32 on MediaPipe web at 1 thread(s) (0.80x), fp32 on LiteRT.js at 2 "
        "thread(s) (0.56x); not faster: fp32 on LiteRT.js at 1 thread(s) (2.00x)." in text
    )
    # the page closest to native int8 per thread count, from the same figures
    assert "- at 1 thread(s), the page closest to native int8 is int8 on LiteRT.js: 3.00x" in text
    assert "- at 2 thread(s), the page closest to native int8 is fp32 on LiteRT.js: 2.50x" in text
    # the 4x target is still judged on int8 alone, as without --formats
    assert "Overall (int8): **met** by LiteRT.js at 1 thread(s) (3.00x)." in text
    assert "| fp32 | `models/mobilenet_v2/mobilenet_v2.fp32.tflite` | 000000000000 | 3.00 |" in text


def test_browser_ratio_formats_option(tmp_path, capsys):
    from posterlite.bench import browser_ratio as mode
    from posterlite.errors import PosterliteError

    assert mode.ratio_formats("fp16, int8,fp16") == ("int8", "fp16")
    browser_ratio = script("browser_ratio")
    for bad, why in (("fp32", "must include int8"), ("int8,int4", "unknown format(s) int4")):
        with pytest.raises(SystemExit) as exit_info:
            browser_ratio.main(["--formats", bad, "--results", str(tmp_path)])
        assert exit_info.value.code == 2
        assert why in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before measuring anything

    int8 = tmp_path / "model.int8.tflite"
    (tmp_path / "formats").mkdir()
    (tmp_path / "formats" / "mobilenet_v2.fp32.tflite").write_bytes(b"x")
    files = mode.format_files(int8, tmp_path / "formats", ("int8", "fp32"))
    assert files == {"int8": int8, "fp32": tmp_path / "formats" / "mobilenet_v2.fp32.tflite"}
    with pytest.raises(PosterliteError, match=r"no \*\.fp16\.tflite"):
        mode.format_files(int8, tmp_path / "formats", ("int8", "fp16"))
    assert mode.round_order(("int8", "fp32", "fp16"), 1) == ["fp32", "fp16", "int8"]


def test_finetune_ablation_best_follows_the_data(tmp_path):
    payload = copy.deepcopy(committed("finetune_ablation"))
    rows = payload["rows"]
    assert {r["variant"] for r in rows} >= {"baseline", "bn_train", "crop_0.5", "crop_1.0"}
    worst = min(rows, key=lambda r: r["best_val_map"])
    worst["best_val_map"] = 0.99  # now the "worst" variant wins on validation
    text = render_into(tmp_path, "finetune_ablation", payload)
    assert f"Best on validation: {worst['variant']} (0.9900)" in text
    assert f"| {worst['variant']} | " in text and "+0.0000 |" in text
    base = next(r for r in payload["rows"] if r["variant"] == "baseline")
    payload["rows"] = [r for r in payload["rows"] if r["variant"] != "baseline_seed1"]
    payload["rows"].append({**base, "variant": "baseline_seed1", "best_val_map": 0.5})
    text = render_into(tmp_path, "finetune_ablation", payload)
    assert f"seeds 0 and 1: {base['best_val_map']:.4f} and 0.5000 (difference " in text
    assert f"(difference {abs(base['best_val_map'] - 0.5):.4f})" in text
    runs = [r["best_val_map"] for r in payload["rows"] if r["variant"].startswith("baseline")]
    mean = sum(runs) / len(runs)
    assert (
        f"| baseline | {len(runs)} | {mean:.4f} | {min(runs):.4f}-{max(runs):.4f} | +0.0000 |"
        in text
    )
    if payload.get("full_runs"):
        payload["full_runs"][-1]["best_val_map"] = 0.98
        text = render_into(tmp_path, "finetune_ablation", payload)
        assert f"Best full run on validation: {payload['full_runs'][-1]['label']} (0.9800)" in text


# ------------------------------------------------------------------ learning curve
def test_learning_curve_subsets_nest_by_film_and_keep_val_test(tmp_path):
    from posterlite.manifest import ManifestRow, read_manifest, write_manifest

    lc = importlib.import_module("learning_curve")
    rows = [
        ManifestRow(str(tmp_path / f"p{i}.jpg"), ("Drama",), "train", "x", f"f{i // 2}")
        for i in range(40)  # two posters per film
    ] + [ManifestRow(str(tmp_path / f"v{i}.jpg"), ("Comedy",), s, "x", f"v{i}")
         for i, s in enumerate(["val"] * 5 + ["test"] * 5)]  # fmt: skip
    base = tmp_path / "manifest.csv"
    write_manifest(rows, base)
    out = lc.build_manifests(base, None, ["25", "50", "100"], tmp_path / "m")
    films = {}
    for size in ("25", "50", "100"):
        got = read_manifest(tmp_path / "m" / f"{size}.csv")
        train = [r for r in got if r.split == "train"]
        films[size] = {r.film_id for r in train}
        assert len(train) == 2 * len(films[size])  # whole films, never half of one
        held = sorted((Path(r.path).name, r.split) for r in got if r.split != "train")
        assert held == sorted((Path(r.path).name, r.split) for r in rows if r.split != "train")
        assert out["sizes"][size]["train_films"] == len(films[size])
    assert [len(films[s]) for s in ("25", "50", "100")] == [5, 10, 20]
    assert films["25"] < films["50"] < films["100"]
    with pytest.raises(SystemExit, match="needs --extra DIR"):
        lc.build_manifests(base, None, ["extra"], tmp_path / "m")
    with pytest.raises(SystemExit, match="extract.py"):
        lc.build_manifests(base, tmp_path / "missing", ["extra"], tmp_path / "m")


def test_arm_parity_finding_follows_the_data(tmp_path):
    """An ARM row whose outputs differ from x86 is named in the findings, not hidden."""
    payload = committed("arm")
    row = next(r for r in payload["rows"] if r.get("arm") and r["format"] == "int8")
    arm = row["arm"]
    arm["identical"], arm["max_abs_diff"], arm["changed_sets"] = arm["posters"] - 3, 2.0, 1
    text = render_into(tmp_path, "arm", payload)
    assert "differ from x86" in text and "all " not in text.split("- Parity: ")[1][:4]
    assert (
        f"{row['model']}/int8 on {arm['cpu']}: {arm['posters'] - 3}/{arm['posters']} identical, "
        "max |difference| 2 (uint8), genre sets changed 1" in text
    )
    arm["repeat_instructions"] = [n + 1 for n in arm["repeat_instructions"]]
    assert "NO, see the `2nd run` column" in render_into(tmp_path, "arm", payload)


def test_learning_curve_reads_back_only_runs_of_the_same_schedule(tmp_path):
    """A finished run in the record is not trained again (its .cache folder may be gone),
    but only under the schedule it was trained with, and never for a smoke run."""
    learning_curve = script("learning_curve")
    payload = committed("learning_curve")
    (tmp_path / "learning_curve.json").write_text(json.dumps(payload), encoding="utf-8")
    runs = learning_curve.recorded_runs(tmp_path, payload["schedule"], smoke=False)
    assert set(runs) == {r["run"] for r in payload["runs"]} and runs
    assert all(r["manifest_sha256"] for r in runs.values())  # what measure() checks
    assert learning_curve.recorded_runs(tmp_path, "160:9,224:9", smoke=False) == {}
    assert learning_curve.recorded_runs(tmp_path, payload["schedule"], smoke=True) == {}


def test_warnings_lose_the_machine_paths():
    import results_io

    warning = f"{results_io.REPO}/models/x/model.int8.tflite was exported from an older model"
    assert (
        results_io.scrubbed(warning)
        == "models/x/model.int8.tflite was exported from an older model"
    )
    shared = f"{results_io.REPO.parent / 'shared'}/pretrained/a.tflite: missing"
    assert results_io.scrubbed(shared) == "../shared/pretrained/a.tflite: missing"


def test_bench_record_keeps_no_machine_path():
    import results_io

    repo = results_io.REPO
    payload = {
        "rows": [{"path": str(repo / "models" / "cnn" / "model.int8.tflite")}],
        "data": {"path": str(repo / "benchmarks" / "sample")},
        "warnings": [f"{repo}/models/cnn/model.int8.tflite was exported from an older model"],
    }
    record = results_io.bench_record(payload)
    assert str(repo) not in json.dumps(record)
    assert record["rows"][0]["path"] == "models/cnn/model.int8.tflite"
