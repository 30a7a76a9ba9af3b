# The README's two commands: `make demo` (set up + run the main job) and `make test` (ruff,
# mypy and the suite: `test` runs `lint` first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint android-tools browser-tools arm-tools tflite-support-venv test-tflite-support

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# adb (Debian package) drives the Android path; tests that need it skip without it.
android-tools:
	@command -v adb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb >/dev/null) || echo "adb not installed: Android tests will skip"; }

# Headless Chromium (Debian's chromium + chromium-driver) and the npm packages pinned by
# posterlite/web/package-lock.json (MediaPipe Tasks for Web, LiteRT.js, playwright-core) drive
# `posterlite bench --target browser` and `posterlite web`; tests that need them skip without.
WEB := posterlite/web
WEB_STAMP := $(WEB)/node_modules/.installed

$(WEB_STAMP): $(WEB)/package-lock.json
	@command -v npm >/dev/null 2>&1 && (cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error) && touch $@ || echo "npm packages not installed: browser tests will skip"

browser-tools:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "chromium not installed: browser tests will skip"; }
	@$(MAKE) -s --no-print-directory $(WEB_STAMP)

# LiteRT's ARM64 build under QEMU user mode (posterlite.arm; `posterlite bench --target
# arm64`): Debian's qemu-user and a C compiler (installed when root), then an arm64 sysroot
# (Debian packages through a private apt configuration: the system's apt is not changed),
# the aarch64 wheels (PyPI) and the instruction-counting TCG plugin, built into
# .cache/arm-tools by posterlite/arm/build.py (idempotent; tools.json is the stamp).
# Tests that need them skip without.
ARM_TOOLS := .cache/arm-tools
ARM_STAMP := $(ARM_TOOLS)/tools.json

$(ARM_STAMP): $(STAMP) posterlite/arm/build.py posterlite/arm/tools.py posterlite/arm/plugin.c
	$(BIN)/python -m posterlite.arm.build $(ARM_TOOLS)

arm-tools: $(STAMP)
	@{ command -v qemu-aarch64 >/dev/null 2>&1 && command -v cc >/dev/null 2>&1; } || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user gcc >/dev/null) || echo "qemu-user or gcc not installed (needs root): ARM tests will skip"; }
	@$(MAKE) -s --no-print-directory $(ARM_STAMP) || echo "ARM tools not built: ARM tests will skip"

# Android's own metadata reader (tflite-support 0.4.4: MetadataDisplayer and the Task
# Library's C++ ImageClassifier) in a venv of its own: it cannot live beside TF 2.21, and it
# needs Debian's libusb-1.0-0. `make test` does not build it (MediaPipe is the main
# metadata consumer); tests/test_metadata.py uses it when present and says so when skipped.
TFLITE_SUPPORT_VENV ?= .venv-tflite-support
TFLITE_SUPPORT_STAMP := $(TFLITE_SUPPORT_VENV)/.installed

$(TFLITE_SUPPORT_STAMP):
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null; } || { echo "tflite-support needs libusb-1.0-0: apt-get install libusb-1.0-0" >&2; exit 1; }
	$(PYTHON) -m venv $(TFLITE_SUPPORT_VENV)
	$(TFLITE_SUPPORT_VENV)/bin/pip install -q tflite-support==0.4.4
	touch $@

tflite-support-venv: $(TFLITE_SUPPORT_STAMP)

test-tflite-support: $(STAMP) $(TFLITE_SUPPORT_STAMP)
	$(BIN)/pytest -q -rs tests/test_metadata.py

demo: $(STAMP)
	$(BIN)/posterlite bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) android-tools browser-tools arm-tools lint
	$(BIN)/pytest -q -rs
