"""The phone's own CPU code: LiteRT's ARM64 build run under QEMU user-mode emulation.

Phones run XNNPACK's ARM64 kernels, chosen at run time from the CPU's features. This
package runs the aarch64 wheel of ai-edge-litert (the host's version) in an emulated
aarch64 Python, once per CPU class (`profiles`), and reports what that code computes
(outputs compared byte for byte with the host's x86 run) and executes (guest instructions
per inference, counted by our TCG plugin, and the kernels they were spent in).

Modules, by job:
- `profiles`: the registry of CPU classes (QEMU -cpu, /proc/cpuinfo, expected kernels,
  QEMU versions known to be wrong);
- `tools`: the tools folder `make arm-tools` builds, its validation and the one-line
  refusal; `build`: building it from Debian's packages and PyPI;
- `guest`: the script that runs inside the emulated Python;
- `run`: `run_arm(model, inputs, profile) -> ArmRun`;
- `symbols` / `kernels`: counted blocks -> ELF symbols -> XNNPACK kernel family;
- `compare`: parity with the host and a poster-folder measurement;
- `plugin.c`: the instruction-counting TCG plugin (C, QEMU plugin API v1).

Emulation wall time is not a phone's time and is never reported as one.
"""
