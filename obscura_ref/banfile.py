"""The ban file on disk (spec/manager.md section 6.1).

The manager never touches disk: the node reads this file when it starts and writes the document
the manager hands it (``SaveBans``). This module only reads and writes JSON; whether a document
is a ban file (its version and fields) is ``BanList.from_document``'s to judge.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

BAN_FILE_NAME = "bans.json"  # in the folder of the data_dir key (spec/config.md)


class BanFileError(Exception):
    """The ban file cannot be read or written; the message names the file and what is wrong."""


def read_ban_document(path: Path) -> object | None:
    """The JSON document of the ban file at ``path``, or None when there is no such file;
    BanFileError naming the file when it exists but cannot be read as JSON."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None  # no ban file yet: no bans
    except (OSError, ValueError) as exc:  # permissions, a folder, a NUL in the name, ...
        raise BanFileError(f"ban file {path}: cannot be read: {exc}") from None  # spec: BAN-8
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BanFileError(f"ban file {path}: is not UTF-8: {exc}") from None  # spec: BAN-8
    try:
        document: object = json.loads(
            text, parse_constant=_no_constant, object_pairs_hook=_unique_names
        )
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to read
        raise BanFileError(f"ban file {path}: is not JSON: {exc}") from None  # spec: BAN-8
    return document


def write_ban_document(path: Path, document: object) -> None:
    """Replace the ban file at ``path`` with ``document``, atomically: a node killed at any
    moment leaves the old file or the new one, never a part (spec: BAN-6). Creates the folder
    if needed; BanFileError naming the file when it cannot be written."""
    try:
        write_json_atomically(path, document)  # spec: BAN-6
    except (TypeError, ValueError) as exc:
        raise BanFileError(f"ban file {path}: the document is not JSON: {exc}") from None
    except OSError as exc:
        raise BanFileError(f"ban file {path}: cannot be written: {exc}") from None


def write_json_atomically(path: Path, document: object) -> None:
    """Replace the file at ``path`` with ``document`` as JSON, atomically: a reader, or a
    process killed at any moment, sees the old file or the new one, never a part (BAN-6 asks
    it of the ban file; the node's status snapshot is written the same way). Creates the
    folder if needed. TypeError or ValueError when the document is not JSON (nothing is
    written); OSError when the file cannot be written."""
    text = json.dumps(document, allow_nan=False, indent=2) + "\n"
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # spec: BAN-6 (a new file in the same folder, so that the rename cannot cross disks)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except ValueError as exc:  # a NUL in the name: a path no file can have
        raise OSError(errno.EINVAL, str(exc)) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # spec: BAN-6 (the whole document on the disk first)
        os.replace(temp_name, path)  # spec: BAN-6 (renamed over the old one: old or new)
        _fsync_folder(folder)  # spec: BAN-6 (the rename itself on the disk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)  # gone already when the rename happened
        raise


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _unique_names(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object, refusing a name given twice: JSON readers disagree on which one wins."""
    found: dict[str, object] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"the name {name!r} appears twice in one object")
        found[name] = value
    return found
