"""The associated files zipped onto the end of a model (labels.txt, thresholds.json), read
with bounded reads: the zip's directory is checked before `zipfile` parses it and no entry
is trusted to be the size its header declares.
"""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from typing import BinaryIO

from posterlite.errors import PosterliteError
from posterlite.interpreter import first_line
from posterlite.metadata.limits import (
    MAX_ASSOCIATED_FILE_BYTES,
    MAX_ASSOCIATED_FILES,
    MAX_ASSOCIATED_TOTAL_BYTES,
    MAX_ZIP_DIRECTORY_BYTES,
)
from posterlite.metadata.rules import shown

# The end-of-central-directory record of a zip, and the zip64 locator that may precede it.
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_BYTES = 22
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_LOCATOR_BYTES = 20
_MAX_ZIP_COMMENT = 0xFFFF
# What zipfile and its decompressors raise on a damaged, encrypted or exotic entry.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
)


def _zip_directory_checked(stream: BinaryIO) -> bool:
    """Whether `stream` ends in a zip; one line if its directory is beyond the limits.

    Looks for the end record the way `zipfile` does (at the very end, else the last one in
    the 64 KiB a comment may take) and checks its entry count and directory size before
    `zipfile` parses the directory, so a file cannot make it build millions of entries.
    """
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    start = max(0, size - _EOCD_BYTES - _MAX_ZIP_COMMENT - _ZIP64_LOCATOR_BYTES)
    stream.seek(start)
    tail = stream.read(size - start)
    at = len(tail) - _EOCD_BYTES
    if at < 0 or tail[at : at + 4] != _EOCD_SIGNATURE or tail[-2:] != b"\0\0":
        at = tail.rfind(_EOCD_SIGNATURE)
        if at < 0 or len(tail) - at < _EOCD_BYTES:
            return False
    entries, directory_bytes = struct.unpack_from("<HI", tail, at + 10)
    if at >= _ZIP64_LOCATOR_BYTES and tail[at - 20 : at - 16] == _ZIP64_LOCATOR_SIGNATURE:
        raise PosterliteError("associated files: zip64 archive (not written by any TFLite tool)")
    if entries > MAX_ASSOCIATED_FILES:
        raise PosterliteError(
            f"associated files: {entries} zip entries (at most {MAX_ASSOCIATED_FILES})"
        )
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise PosterliteError(
            f"associated files: zip directory of {directory_bytes} bytes "
            f"(at most {MAX_ZIP_DIRECTORY_BYTES})"
        )
    return True


def zip_entries(stream: BinaryIO) -> dict[str, bytes]:
    """The files zipped onto the end of a model, each read with a bounded read.

    No entry is trusted to be the size its header declares: at most one byte more than
    the room left (MAX_ASSOCIATED_FILE_BYTES each, MAX_ASSOCIATED_TOTAL_BYTES together) is
    ever decompressed, so a small file that inflates to gigabytes costs kilobytes.
    Returns name -> bytes ({} when `stream` ends in no zip); raises PosterliteError for a
    zip beyond the limits, damaged, encrypted or naming a file twice.
    """
    if not _zip_directory_checked(stream):
        return {}
    files: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(stream) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ASSOCIATED_FILES:
                raise PosterliteError(
                    f"associated files: {len(entries)} zip entries (at most {MAX_ASSOCIATED_FILES})"
                )
            for entry in entries:
                name = entry.filename
                if name in files:
                    raise PosterliteError(f"associated files: {shown(name)} is zipped twice")
                room = min(MAX_ASSOCIATED_FILE_BYTES, MAX_ASSOCIATED_TOTAL_BYTES - total)
                with archive.open(entry) as member:
                    data = member.read(room + 1)
                if len(data) > room:
                    limit = (
                        f"{MAX_ASSOCIATED_FILE_BYTES} bytes"
                        if room == MAX_ASSOCIATED_FILE_BYTES
                        else f"{MAX_ASSOCIATED_TOTAL_BYTES} bytes for all files together"
                    )
                    raise PosterliteError(
                        f"associated file {shown(name)} is larger than the limit ({limit})"
                    )
                total += len(data)
                files[name] = data
    except _ZIP_ERRORS as exc:
        raise PosterliteError(
            f"associated files: unreadable zip ({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    return files


def associated_files(model_bytes: bytes) -> dict[str, bytes]:
    """Files zipped onto the end of the model (empty when there are none), size-capped. Raises
    PosterliteError as `zip_entries` does."""
    return zip_entries(io.BytesIO(model_bytes))
