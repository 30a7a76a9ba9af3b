"""A simulated Android device that speaks adb's device-side transport protocol over TCP.

It exists so the test suite can drive `posterlite bench --target android` through the
REAL `adb` client and server (Debian's adb 29.0.6) without an emulator: `adb connect
127.0.0.1:PORT` registers it like a network device. What it implements (what adb 29 sends):

- the transport: 24-byte message headers (command, arg0, arg1, length, checksum, magic),
  CNXN handshake with a `device::` banner (properties + features) and no authentication
  (or, in `unauthorized` mode, AUTH tokens it never accepts; in `offline` mode it never
  answers the handshake), OPEN / OKAY / WRTE / CLSE streams with adb's flow control
  (one WRTE in flight per stream until the peer's OKAY);
- `shell:` (raw output, no status) and `shell,v2[,raw|,pty]:` (shell protocol v2 packets:
  stdout / stderr / exit status), the latter advertised with the `shell_v2` feature;
- `sync:` with STAT and the `stat_v2` variants (STA2 / LST2), LIST, SEND (+ DATA / DONE),
  RECV and QUIT. adb 29.0.6 sends SEND / RECV v1 (SND2 / RCV2 only exist from adb 30,
  behind the `sendrecv_v2` feature, which is not advertised).

Commands run on the host with `/bin/sh -c`, with every `/data/local/tmp` in the command
mapped to a temporary folder, and `getprop` answering from the simulated properties. It is
a test device, not an emulator: nothing here is Android, and binaries pushed to it must be
runnable on the host (the tests push a host stand-in for benchmark_model).
"""

from __future__ import annotations

import argparse
import os
import queue
import shlex
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
REMOTE_ROOT = "/data/local/tmp"
SYNC_DATA_MAX = 64 * 1024
# Shell protocol v2 packet ids.
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN = 0, 1, 2, 3, 4

DEFAULT_PROPS = {
    "ro.product.model": "Posterlite Sim",
    "ro.product.manufacturer": "posterlite",
    "ro.product.name": "posterlite_sim",
    "ro.product.device": "sim_x86_64",
    "ro.product.cpu.abi": "x86_64",
    "ro.build.version.sdk": "34",
    "ro.build.version.release": "14",
}
FEATURES = ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir")


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def pack_message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    header = struct.pack(
        "<6I", command, arg0, arg1, len(data), _checksum(data), command ^ 0xFFFFFFFF
    )
    return header + data


def shell_packet(kind: int, data: bytes) -> bytes:
    return struct.pack("<BI", kind, len(data)) + data


@dataclass
class SimConfig:
    root: Path  # what /data/local/tmp maps to
    serial_hint: str = "sim"
    props: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROPS))
    mode: str = "device"  # "device" | "offline" | "unauthorized"
    noexec: bool = False  # pushed files lose exec bits and chmod is a no-op (noexec mount)
    log: Callable[[str], None] | None = None


class _Stream:
    """One adb stream: our id, the server's id, an inbox and the OKAY-gated send window."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.can_send = threading.Event()
        self.can_send.set()
        self.closed = False
        self._buffer = b""

    def send(self, data: bytes) -> None:
        step = self.conn.max_payload
        for start in range(0, len(data), step):
            # adb allows one WRTE in flight per stream: wait for the peer's OKAY.
            while not self.can_send.wait(0.5):
                if self.closed or self.conn.dead:
                    return
            if self.closed or self.conn.dead:
                return
            self.can_send.clear()
            self.conn.write(A_WRTE, self.local_id, self.remote_id, data[start : start + step])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.write(A_CLSE, self.local_id, self.remote_id)
            self.conn.forget(self.local_id)

    def read_exact(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            chunk = self.inbox.get()
            if chunk is None:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


class _Connection:
    def __init__(self, sock: socket.socket, config: SimConfig) -> None:
        self.sock = sock
        self.config = config
        self.lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.max_payload = 4096
        self.dead = False

    def log(self, text: str) -> None:
        if self.config.log:
            self.config.log(text)

    def write(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        with self.lock:
            try:
                self.sock.sendall(pack_message(command, arg0, arg1, data))
            except OSError:
                self.dead = True

    def forget(self, local_id: int) -> None:
        with self.lock:
            self.streams.pop(local_id, None)

    def _recv_exact(self, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def banner(self) -> bytes:
        props = ";".join(
            f"{k}={self.config.props[k]}"
            for k in ("ro.product.name", "ro.product.model", "ro.product.device")
        )
        return f"device::{props};features={','.join(FEATURES)}".encode()

    def serve(self) -> None:
        try:
            while True:
                header = self._recv_exact(24)
                if header is None:
                    break
                command, arg0, arg1, length, _check, magic = struct.unpack("<6I", header)
                if magic != command ^ 0xFFFFFFFF:
                    self.log(f"bad magic {magic:#x}")
                    break
                data = self._recv_exact(length) if length else b""
                if data is None:
                    break
                self.dispatch(command, arg0, arg1, data)
        except OSError:
            pass
        finally:
            self.dead = True
            for stream in list(self.streams.values()):
                stream.closed = True
                stream.inbox.put(None)
            self.sock.close()

    def dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        mode = self.config.mode
        if command == A_CNXN:
            self.log(f"CNXN {data!r}")
            if mode == "offline":
                return  # never complete the handshake: adb lists the device as offline
            self.max_payload = max(4096, min(arg1, MAX_PAYLOAD))
            if mode == "unauthorized":
                self.write(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
                return
            self.write(A_CNXN, A_VERSION, MAX_PAYLOAD, self.banner())
        elif command == A_AUTH:
            # Reject every signature; a public key offer is left pending (no user to accept).
            if arg0 == AUTH_SIGNATURE:
                self.write(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
        elif command == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            self.log(f"OPEN {service}")
            self.open(arg0, service)
        elif command == A_OKAY:
            stream = self.streams.get(arg1)
            if stream:
                stream.can_send.set()
        elif command == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                self.write(A_CLSE, 0, arg0)
                return
            self.write(A_OKAY, stream.local_id, stream.remote_id)
            stream.inbox.put(data)
        elif command == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream:
                stream.closed = True
                stream.inbox.put(None)
        else:
            self.log(f"ignored command {command:#x}")

    def open(self, remote_id: int, service: str) -> None:
        handler: Callable[[_Stream], None] | None = None
        if service.startswith("shell"):
            options, _, command = service.partition(":")
            v2 = "v2" in options.split(",")[1:]
            handler = lambda s: _shell(s, command, v2, self.config)  # noqa: E731
        elif service.startswith("sync:"):
            handler = lambda s: _sync(s, self.config)  # noqa: E731
        if handler is None:
            self.log(f"refused service {service}")
            self.write(A_CLSE, 0, remote_id)
            return
        with self.lock:
            local_id = self.next_id
            self.next_id += 1
            stream = _Stream(self, local_id, remote_id)
            self.streams[local_id] = stream
        self.write(A_OKAY, local_id, remote_id)

        def run() -> None:
            try:
                handler(stream)
            finally:
                stream.close()

        threading.Thread(target=run, daemon=True, name=f"adb-sim-{service[:20]}").start()


# ------------------------------------------------------------------------------ shell
def _host_path(remote: str, config: SimConfig) -> Path:
    if remote == REMOTE_ROOT or remote.startswith(REMOTE_ROOT + "/"):
        return config.root / remote[len(REMOTE_ROOT) :].lstrip("/")
    raise PermissionError(f"{remote}: outside {REMOTE_ROOT} in the simulator")


def _bin_dir(config: SimConfig) -> Path:
    """getprop (and chmod in noexec mode) as host scripts, first on the shell's PATH."""
    folder = config.root.parent / f".{config.root.name}-bin"
    folder.mkdir(exist_ok=True)
    cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;\n" for k, v in config.props.items())  # fmt: skip
    getprop = folder / "getprop"
    getprop.write_text(f'#!/bin/sh\ncase "$1" in\n{cases}  *) echo ;;\nesac\n')
    getprop.chmod(0o755)
    chmod = folder / "chmod"
    if config.noexec:
        chmod.write_text("#!/bin/sh\nexit 0\n")
        chmod.chmod(0o755)
    elif chmod.exists():
        chmod.unlink()
    return folder


def _shell(stream: _Stream, command: str, v2: bool, config: SimConfig) -> None:
    mapped = command.replace(REMOTE_ROOT, str(config.root))
    env = dict(os.environ)
    env["PATH"] = f"{_bin_dir(config)}{os.pathsep}{env.get('PATH', '')}"
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", mapped or "true"],
            cwd=config.root,
            env=env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=1800,
            check=False,
        )
        stdout, stderr, status = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired:
        stdout, stderr, status = b"", b"timeout\n", 124
    if status < 0:  # killed by a signal: sh reports 128 + signal
        status = 128 - status
    if not v2:
        stream.send(stdout + stderr)
        return
    packets = b""
    for kind, data in ((SHELL_STDOUT, stdout), (SHELL_STDERR, stderr)):
        for start in range(0, len(data), SYNC_DATA_MAX):
            packets += shell_packet(kind, data[start : start + SYNC_DATA_MAX])
    packets += shell_packet(SHELL_EXIT, bytes([status & 0xFF]))
    stream.send(packets)


# ------------------------------------------------------------------------------- sync
def _stat_v1(path: Path) -> bytes:
    try:
        info = path.stat()
    except OSError:
        return b"STAT" + struct.pack("<3I", 0, 0, 0)
    return b"STAT" + struct.pack(
        "<3I", info.st_mode & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF, int(info.st_mtime)
    )


def _stat_v2(ident: bytes, path: Path, follow: bool) -> bytes:
    try:
        info = path.stat() if follow else path.lstat()
    except FileNotFoundError:
        return ident + struct.pack("<I2Q4I4Q", 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  # ENOENT
    except OSError:
        return ident + struct.pack("<I2Q4I4Q", 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  # EACCES
    return ident + struct.pack(
        "<I2Q4I4Q",
        0,
        info.st_dev,
        info.st_ino,
        info.st_mode,
        info.st_nlink,
        info.st_uid,
        info.st_gid,
        info.st_size,
        int(info.st_atime),
        int(info.st_mtime),
        int(info.st_ctime),
    )


def _fail(message: str) -> bytes:
    data = message.encode()
    return b"FAIL" + struct.pack("<I", len(data)) + data


def _sync(stream: _Stream, config: SimConfig) -> None:
    while True:
        header = stream.read_exact(8)
        if header is None:
            return
        ident, length = header[:4], struct.unpack("<I", header[4:])[0]
        if ident == b"QUIT":
            return
        payload = stream.read_exact(length)
        if payload is None:
            return
        stream.conn.log(f"sync {ident.decode(errors='replace')} {payload[:80]!r}")
        try:
            if ident == b"STAT":
                stream.send(_stat_v1(_host_path(payload.decode(), config)))
            elif ident in (b"STA2", b"LST2"):
                path = _host_path(payload.decode(), config)
                stream.send(_stat_v2(ident, path, follow=ident == b"STA2"))
            elif ident == b"LIST":
                stream.send(_list(_host_path(payload.decode(), config)))
            elif ident == b"SEND":
                if not _receive_file(stream, payload.decode(), config):
                    return
            elif ident == b"RECV":
                _send_file(stream, _host_path(payload.decode(), config))
            else:
                stream.send(_fail(f"unknown sync request {ident!r}"))
                return
        except PermissionError as exc:
            stream.send(_fail(str(exc)))


def _list(folder: Path) -> bytes:
    out = b""
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            info = child.lstat()
            name = child.name.encode()
            out += b"DENT" + struct.pack(
                "<4I", info.st_mode, info.st_size & 0xFFFFFFFF, int(info.st_mtime), len(name)
            )
            out += name
    return out + b"DONE" + struct.pack("<4I", 0, 0, 0, 0)


def _receive_file(stream: _Stream, spec: str, config: SimConfig) -> bool:
    remote, _, mode_text = spec.rpartition(",")
    try:
        mode = int(mode_text)
    except ValueError:
        remote, mode = spec, 0o644
    target = _host_path(remote, config)  # PermissionError -> FAIL after draining? keep simple
    chunks = []
    while True:
        header = stream.read_exact(8)
        if header is None:
            return False
        ident, length = header[:4], struct.unpack("<I", header[4:])[0]
        if ident == b"DATA":
            data = stream.read_exact(length)
            if data is None:
                return False
            chunks.append(data)
        elif ident == b"DONE":
            target.parent.mkdir(parents=True, exist_ok=True)  # adbd creates parents too
            target.write_bytes(b"".join(chunks))
            mode = stat.S_IMODE(mode) or 0o644
            target.chmod(mode & ~0o111 if config.noexec else mode)  # noexec: never executable
            os.utime(target, (length, length))
            stream.send(b"OKAY" + struct.pack("<I", 0))
            return True
        else:
            stream.send(_fail(f"unexpected {ident!r} during SEND"))
            return False


def _send_file(stream: _Stream, path: Path) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        stream.send(_fail(f"open failed: {exc.strerror or exc}"))
        return
    out = b""
    for start in range(0, len(data), SYNC_DATA_MAX):
        block = data[start : start + SYNC_DATA_MAX]
        out += b"DATA" + struct.pack("<I", len(block)) + block
    stream.send(out + b"DONE" + struct.pack("<I", 0))


# ----------------------------------------------------------------------------- server
class DeviceSimulator:
    """A listening simulated device; `start()` returns its port, `stop()` shuts it down."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.config.root.mkdir(parents=True, exist_ok=True)
        self.server = socket.create_server((host, port))
        self.host, self.port = self.server.getsockname()[:2]
        self._thread: threading.Thread | None = None
        self._running = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True, name="adb-sim")
        self._thread.start()
        return self.port

    def _accept(self) -> None:
        while self._running:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, self.config)
            threading.Thread(target=conn.serve, daemon=True, name="adb-sim-conn").start()

    def stop(self) -> None:
        self._running = False
        try:
            self.server.close()
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", type=Path, default=None, help="host folder for /data/local/tmp")
    parser.add_argument("--mode", choices=("device", "offline", "unauthorized"), default="device")
    parser.add_argument("--model", default=DEFAULT_PROPS["ro.product.model"])
    parser.add_argument("--abi", default=DEFAULT_PROPS["ro.product.cpu.abi"])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="adb-sim-")) / "data_local_tmp"
    props = dict(DEFAULT_PROPS, **{"ro.product.model": args.model, "ro.product.cpu.abi": args.abi})
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.verbose else None
    sim = DeviceSimulator(
        SimConfig(root=root, props=props, mode=args.mode, log=log), port=args.port
    )
    sim.start()
    print(f"simulated device on {sim.address} (/data/local/tmp -> {root}); "
          f"adb connect {sim.address}", flush=True)  # fmt: skip
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
