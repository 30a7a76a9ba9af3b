"""The script that runs INSIDE the emulated aarch64 Python (QEMU user mode).

It must import nothing but the standard library, numpy and ai_edge_litert: the aarch64
sysroot holds only those (posterlite itself is not installed there). `run.py` starts it as

    qemu-aarch64 ... python3.11 guest.py MODEL INPUTS.npy OUTPUTS.npz MAPS.txt

and it:
1. opens MODEL with LiteRT's `Interpreter(num_threads=1)` (XNNPACK, the default delegate);
2. runs one warm-up invoke on the first input (XNNPACK's first-run setup), bracketed by two
   `os.sched_yield()` calls like every invoke, so the counting plugin sees
   2 + 2 * N markers and the per-inference count excludes Python start-up and model load;
3. for each row of INPUTS (shape (N, *input_shape), the model's input dtype; memory-mapped,
   each row copied out before its markers): sched_yield, set_tensor + invoke, sched_yield,
   then reads the outputs and prints `done K` (progress);
4. writes every output stacked over the N inputs to OUTPUTS (npz: output0, output1, ...)
   and the guest's own /proc/self/maps lines for mapped files to MAPS (the host
   maps counted block addresses to symbols with them), each through a temp file + rename.
"""

import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def marker() -> None:
    # aarch64 syscall 124: the counting plugin appends its running total at each one.
    os.sched_yield()


def run(model_path: str, inputs_path: str) -> list:
    # Memory-mapped, not read onto the heap: the heap then holds the same objects before
    # poster K whatever the number of posters, so a run on the first K posters executes
    # the same instructions for them as a run on all (the bench's repeat check). Loaded
    # whole, the allocator took paths a few instructions longer or shorter per inference.
    inputs = np.load(inputs_path, mmap_mode="r")
    interpreter = Interpreter(model_path=model_path, num_threads=1)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    if inputs.dtype != detail["dtype"] or tuple(inputs.shape[1:]) != tuple(detail["shape"][1:]):
        raise SystemExit(
            f"inputs {inputs.dtype} {inputs.shape[1:]} do not fit the model's input "
            f"{np.dtype(detail['dtype'])} {tuple(detail['shape'][1:])}"
        )
    index = detail["index"]
    output_indices = [d["index"] for d in interpreter.get_output_details()]
    first = np.array(inputs[:1])  # each row copied out of the file before its markers
    marker()
    interpreter.set_tensor(index, first)
    interpreter.invoke()
    marker()
    outputs = [[] for _ in output_indices]
    for row in range(len(inputs)):
        batch = np.array(inputs[row : row + 1])
        marker()
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
        marker()
        for stack, output_index in zip(outputs, output_indices, strict=True):
            stack.append(interpreter.get_tensor(output_index)[0].copy())
        print(f"done {row + 1}", flush=True)  # the host's progress bar
    return [np.stack(stack) for stack in outputs]


def write_atomic(path: str, write) -> None:  # noqa: ANN001 (a callable taking a file)
    tmp = path + ".part"
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, path)


def file_maps() -> bytes:
    """The file-backed lines of /proc/self/maps (the executable and every library)."""
    with open("/proc/self/maps", "rb") as handle:
        return b"".join(line for line in handle if b" /" in line)


def main(argv: list) -> None:
    model_path, inputs_path, outputs_path, maps_path = argv
    outputs = run(model_path, inputs_path)
    arrays = {f"output{k}": array for k, array in enumerate(outputs)}
    write_atomic(outputs_path, lambda handle: np.savez(handle, **arrays))
    write_atomic(maps_path, lambda handle: handle.write(file_maps()))


if __name__ == "__main__":
    main(sys.argv[1:])
