"""What one measurement is: `ModelSpec` (a model file and what it is), `LatencyStats`,
`BenchRow` (one model x format x thread count on one target; an ARM row carries its
`ArmFigures`), `Ratio` (one row's p50, or guest instructions, over another's) and
`KerasReference` (the Keras model's figures recorded at export), each with its JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np

from posterlite.bench.records.json_values import (
    JSONObject,
    JSONReader,
    accuracy_from_json,
    as_object,
    read_text,
)
from posterlite.errors import PosterliteError
from posterlite.metrics import MultiLabelReport

# What a spec or row is: one of posterlite's models, the Keras float baseline, one of
# Google's ImageNet reference files, or a posterlite model run by an app runtime.
Kind = Literal["posterlite", "keras", "reference", "app"]
# Where a row ran. (The registry's targets add "mediapipe": its rows run on the host CPU.)
# "arm64": LiteRT's aarch64 build under QEMU user mode, one emulated CPU class per row.
Where = Literal["cpu", "android", "browser", "arm64"]
# What a ratio divides: p50 latencies from the same rounds, or guest instructions per
# inference on the same emulated CPU class.
RatioBasis = Literal["p50", "instructions"]
MEMORY_METHOD = "peak RSS growth (ru_maxrss) of a fresh process across load + allocate + 1 invoke"


# ------------------------------------------------------------------------- the records
@dataclass(frozen=True)
class KerasReference:
    """The Keras model's figures on a labelled set, recorded at export in the `.tflite`'s
    JSON sidecar (`posterlite.bench.sidecar`), so bench reports the change against Keras
    without TensorFlow. It applies only to the same posters (`data_digest`: files +
    labels) preprocessed the same way (`pixels_digest`, `preprocess_version`)."""

    mean_average_precision: float
    macro_f1: float
    posters: int
    data: str  # the labelled set as given (repo-relative for the bundled sample)
    data_digest: str
    pixels_digest: str
    input_size: int
    keras_sha256: str
    accuracy: dict[str, object] = field(default_factory=dict)  # the whole MultiLabelReport
    preprocess_version: str = ""  # preprocess.PREPROCESS_VERSION at export

    @classmethod
    def from_dict(cls, data: JSONObject) -> KerasReference | None:
        """The reference in `data` (a sidecar's `keras_reference`), or None when malformed."""
        obj = JSONReader(data, "keras_reference")
        try:
            return cls(
                mean_average_precision=obj.number("mean_average_precision"),
                macro_f1=obj.number("macro_f1"),
                posters=obj.integer("posters"),
                data=str(obj.get("data")),
                data_digest=str(obj.get("data_digest")),
                pixels_digest=str(obj.get("pixels_digest")),
                input_size=obj.integer("input_size"),
                keras_sha256=str(obj.get("keras_sha256")),
                accuracy=dict(as_object(obj.get("accuracy", None) or {}, "accuracy")),
                preprocess_version=str(obj.get("preprocess_version", "")),
            )
        except PosterliteError:
            return None


@dataclass(frozen=True)
class ModelSpec:
    """A model file to benchmark and what it is."""

    name: str
    format: str  # fp32 | fp16 | dynamic | int8 | keras | tflite | a reference's own tag
    path: Path
    kind: Kind
    keras_reference: KerasReference | None = None  # recorded Keras figures, when known


@dataclass(frozen=True)
class LatencyStats:
    """Latency figures in milliseconds; a figure the source does not give is None.

    With several interleaved rounds, `p50_ms` is the median of the per-round p50s (listed
    in `round_p50_ms`), which a burst of load from other processes moves far less than a
    pooled percentile; the other percentiles pool every sample.
    """

    count: int
    mean_ms: float
    p50_ms: float | None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    first_ms: float | None = None  # first (cold) inference, when known
    p5_ms: float | None = None  # benchmark_model prints p5 / median / p95
    p95_ms: float | None = None
    rounds: int = 1
    round_p50_ms: tuple[float, ...] = ()
    pooled_p50_ms: float | None = None

    @classmethod
    def from_samples(cls, seconds: Sequence[float], first_s: float | None = None) -> LatencyStats:
        """Statistics of one round of samples (seconds); raises ValueError when empty."""
        return cls.from_rounds([seconds], first_s)

    @classmethod
    def from_rounds(
        cls, rounds: Sequence[Sequence[float]], first_s: float | None = None
    ) -> LatencyStats:
        """Statistics of several rounds of samples (seconds): p50 is the median of the
        rounds' p50s, the other figures pool every sample. Raises ValueError when a round
        is empty."""
        if not rounds or not all(len(r) for r in rounds):
            raise ValueError("no latency samples")
        ms = np.concatenate([np.asarray(r, dtype=np.float64) for r in rounds]) * 1e3
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        per_round = tuple(float(np.percentile(np.asarray(r) * 1e3, 50)) for r in rounds)
        return cls(
            count=int(ms.size),
            mean_ms=float(ms.mean()),
            p50_ms=float(statistics.median(per_round)),
            p90_ms=p90,
            p99_ms=p99,
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            std_ms=float(ms.std()),
            first_ms=None if first_s is None else first_s * 1e3,
            rounds=len(rounds),
            round_p50_ms=per_round,
            pooled_p50_ms=p50,
        )

    @property
    def per_round_p50_ms(self) -> tuple[float, ...]:
        """The p50 of each round; a source without rounds counts as one round of `p50_ms`."""
        if self.round_p50_ms:
            return self.round_p50_ms
        return () if self.p50_ms is None else (self.p50_ms,)

    @classmethod
    def from_json(cls, data: object) -> LatencyStats:
        """The statistics as `to_json_value` wrote them."""
        obj = JSONReader.of(data, "latency")
        optional = ("p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "first_ms",
                    "p5_ms", "p95_ms", "pooled_p50_ms")  # fmt: skip
        return cls(
            count=obj.integer("count"),
            mean_ms=obj.number("mean_ms"),
            rounds=obj.integer("rounds", 1),
            round_p50_ms=obj.numbers("round_p50_ms", ()),
            **{key: obj.opt_number(key) for key in optional},
        )


@dataclass(frozen=True)
class KerasDelta:
    """A row's accuracy minus its Keras model's, on the same posters."""

    mean_average_precision: float
    macro_f1: float
    source: Literal["measured", "recorded"]  # Keras ran in this bench | recorded at export


@dataclass(frozen=True)
class KernelShare:
    """Guest instructions one function executed over a run's counted inferences."""

    symbol: str
    library: str
    instructions: int

    @classmethod
    def from_json(cls, data: object) -> KernelShare:
        """A kernel as `to_json_value` wrote it."""
        obj = JSONReader.of(data, "kernel")
        return cls(obj.text("symbol"), obj.text("library"), obj.integer("instructions"))


@dataclass(frozen=True)
class ArmFigures:
    """One model on one emulated ARM CPU class (`posterlite.arm`): what LiteRT's aarch64
    kernels computed on the run's posters against the host's x86 run, and what they
    executed. Emulation times are what the run cost this host, never a phone's latency."""

    cpu: str  # the profile (`--arm-cpu` name): a53 | a76 | a710 | sme
    cpu_title: str  # the phone cores it stands for
    qemu_cpu: str  # QEMU's -cpu
    qemu_version: str
    litert_version: str  # of the aarch64 wheel (the host's)
    posters: int  # inputs run (N)
    identical: int  # posters whose raw outputs are byte-identical to the host's
    max_abs_diff: float  # largest |ARM - x86| in output units (`output_dtype` values)
    output_dtype: str  # "uint8" for an int8 model's outputs, "float32" for a float one
    changed_sets: int | None  # posters whose genre set changes at the row's threshold
    changed_sets_tuned: int | None  # ... at the model's tuned thresholds (None: no genres)
    instructions_median: int  # guest instructions per inference
    instructions_min: int
    instructions_max: int
    warmup_instructions: int  # the first invoke (XNNPACK's set-up included)
    startup_instructions: int  # Python start, imports and model load
    first_instructions: tuple[int, ...]  # per inference, the first `len(repeat_...)` posters
    repeat_instructions: tuple[int, ...]  # the same posters in a second emulator process
    repeat_outputs_identical: bool  # the second process gave the same raw outputs
    kernel_family: str | None  # of the matrix-multiply kernel with the most instructions
    expected_family: str  # what XNNPACK is expected to pick on this class
    matmul_kernel: str | None  # that kernel's symbol
    top_kernels: tuple[KernelShare, ...]
    xnnpack: bool  # LiteRT said it created the XNNPACK delegate
    emulation_wall_s: float  # this host's time for the run: NOT a phone's latency
    emulation_cpu_s: float

    @property
    def exact(self) -> bool:
        """Every poster's outputs byte-identical to the host's."""
        return self.identical == self.posters

    @property
    def repeat_same(self) -> bool:
        """The second process executed the same instructions per inference and gave the
        same outputs."""
        return (
            bool(self.repeat_instructions)
            and self.repeat_instructions == self.first_instructions
            and self.repeat_outputs_identical
        )

    @property
    def family_as_expected(self) -> bool | None:
        """Whether the convolutions ran the family expected on this class (None: no kernel)."""
        return None if self.kernel_family is None else self.kernel_family == self.expected_family

    @classmethod
    def from_json(cls, data: object) -> ArmFigures:
        """The figures as `to_json_value` wrote them."""
        obj = JSONReader.of(data, "arm")
        family, matmul = obj.get("kernel_family", None), obj.get("matmul_kernel", None)
        return cls(
            cpu=obj.text("cpu"),
            cpu_title=obj.text("cpu_title"),
            qemu_cpu=obj.text("qemu_cpu"),
            qemu_version=obj.text("qemu_version"),
            litert_version=obj.text("litert_version"),
            posters=obj.integer("posters"),
            identical=obj.integer("identical"),
            max_abs_diff=obj.number("max_abs_diff"),
            output_dtype=obj.text("output_dtype"),
            changed_sets=obj.opt_integer("changed_sets"),
            changed_sets_tuned=obj.opt_integer("changed_sets_tuned"),
            instructions_median=obj.integer("instructions_median"),
            instructions_min=obj.integer("instructions_min"),
            instructions_max=obj.integer("instructions_max"),
            warmup_instructions=obj.integer("warmup_instructions"),
            startup_instructions=obj.integer("startup_instructions"),
            first_instructions=obj.integers("first_instructions"),
            repeat_instructions=obj.integers("repeat_instructions"),
            repeat_outputs_identical=bool(obj.get("repeat_outputs_identical")),
            kernel_family=None if family is None else read_text(family, "kernel_family"),
            expected_family=obj.text("expected_family"),
            matmul_kernel=None if matmul is None else read_text(matmul, "matmul_kernel"),
            top_kernels=tuple(KernelShare.from_json(k.data) for k in obj.children("top_kernels")),
            xnnpack=bool(obj.get("xnnpack")),
            emulation_wall_s=obj.number("emulation_wall_s"),
            emulation_cpu_s=obj.number("emulation_cpu_s"),
        )


@dataclass
class BenchRow:
    """One model x format x thread count on one target."""

    model: str
    format: str  # fp32 | fp16 | dynamic | int8 | keras | the reference's own tag
    kind: Kind
    path: str
    target: Where
    threads: int | None
    size_bytes: int
    latency: LatencyStats | None = None
    load_ms: float | None = None
    end_to_end_ms: float | None = None  # decode + preprocess + invoke, per poster (mean)
    peak_memory_mb: float | None = None
    memory_method: str = ""
    accuracy: MultiLabelReport | None = None
    device: dict[str, str] = field(default_factory=dict)  # what the device says it is
    delegate: str = "xnnpack"
    notes: list[str] = field(default_factory=list)
    vs_keras: KerasDelta | None = None
    end_to_end_p50_ms: float | None = None  # browser: per-poster decode + classify, p50
    end_to_end_p90_ms: float | None = None
    model_fetch_ms: float | None = None  # browser: fetching the model file in the page
    input_size: int | None = None  # the model's input side in pixels, when known
    arm: ArmFigures | None = None  # arm64: parity, instructions and kernels on one CPU class

    @property
    def label(self) -> str:
        """`model/format`, how tables and ratios name the row."""
        return f"{self.model}/{self.format}"

    @classmethod
    def from_json(cls, data: object) -> BenchRow:
        """A row as `BenchReport.to_json` wrote it (schema 2 rows included)."""
        obj = JSONReader.of(data, "row")
        latency, accuracy = obj.get("latency", None), obj.get("accuracy", None)
        arm = obj.get("arm", None)
        vs_keras = None
        if obj.get("vs_keras", None) is not None:
            d = obj.child("vs_keras")
            source = cast(Literal["measured", "recorded"], d.text("source"))
            vs_keras = KerasDelta(d.number("mean_average_precision"), d.number("macro_f1"), source)
        return cls(
            model=obj.text("model"),
            format=obj.text("format"),
            kind=cast(Kind, obj.choice("kind", Kind)),
            path=obj.text("path"),
            target=cast(Where, obj.choice("target", Where)),
            threads=obj.opt_integer("threads"),
            size_bytes=obj.integer("size_bytes"),
            latency=None if latency is None else LatencyStats.from_json(latency),
            load_ms=obj.opt_number("load_ms"),
            end_to_end_ms=obj.opt_number("end_to_end_ms"),
            peak_memory_mb=obj.opt_number("peak_memory_mb"),
            memory_method=obj.text("memory_method", ""),
            accuracy=None if accuracy is None else accuracy_from_json(accuracy),
            device=obj.string_map("device"),
            delegate=obj.text("delegate", "xnnpack"),
            notes=list(obj.texts("notes", [])),
            vs_keras=vs_keras,
            end_to_end_p50_ms=obj.opt_number("end_to_end_p50_ms"),
            end_to_end_p90_ms=obj.opt_number("end_to_end_p90_ms"),
            model_fetch_ms=obj.opt_number("model_fetch_ms"),
            input_size=obj.opt_integer("input_size"),
            arm=None if arm is None else ArmFigures.from_json(arm),
        )


@dataclass(frozen=True)
class Ratio:
    """One row's p50 over another's, both from the same interleaved rounds; or (`basis`
    "instructions") one ARM row's guest instructions per inference over another's on the
    same emulated CPU class (`cpu`).

    A p50 `value` is `posterlite.bench.timing.round_ratio`'s figure: the median of the
    per-round ratios (`per_round`), the one latency ratio definition every target uses. An
    instruction ratio divides the two rows' median counts (no rounds: counts repeat exactly).
    """

    name: str
    numerator: str  # row label
    denominator: str
    threads: int | None
    value: float
    per_round: tuple[float, ...] = ()  # the ratio within each round
    goal: float | None = None  # at most
    note: str = ""
    basis: RatioBasis = "p50"
    cpu: str | None = None  # the ARM CPU class of an instruction ratio

    @property
    def met(self) -> bool | None:
        """Whether `value` is within `goal`; None without a goal."""
        return None if self.goal is None else self.value <= self.goal

    @classmethod
    def from_json(cls, data: object) -> Ratio:
        """A ratio as `BenchReport.to_json` wrote it (its `met` is recomputed)."""
        obj = JSONReader.of(data, "ratio")
        return cls(
            name=obj.text("name"),
            numerator=obj.text("numerator"),
            denominator=obj.text("denominator"),
            threads=obj.opt_integer("threads"),
            value=obj.number("value"),
            per_round=obj.numbers("per_round", ()),
            goal=obj.opt_number("goal"),
            note=obj.text("note", ""),
            basis=cast(
                RatioBasis, obj.choice("basis", RatioBasis) if "basis" in obj.data else "p50"
            ),
            cpu=None if obj.get("cpu", None) is None else obj.text("cpu"),
        )
