"""The ban file on disk: spec/manager.md section 6.1 (BAN-6, BAN-8)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from obscura_ref.banfile import BAN_FILE_NAME, BanFileError, read_ban_document, write_ban_document

ROOT = Path(__file__).resolve().parents[1]


def document(version: int, padding: int = 0) -> dict[str, object]:
    """A ban file's document; ``version`` goes into every ban, so a mix of two is seen."""
    bans = [
        {"address": f"192.0.2.{n}", "until": 1_700_000_000 + version, "requirement": "WIRE-7"}
        for n in range(1, 4)
    ]
    # The padding makes each write long, so that a kill often lands inside one.
    return {"version": 1, "bans": bans, "padding": "x" * padding}


def test_a_written_document_reads_back_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "more" / BAN_FILE_NAME  # folders are created
    for version in range(3):
        write_ban_document(path, document(version))
        assert read_ban_document(path) == document(version)
    write_ban_document(path, {"version": 1, "bans": []})
    assert read_ban_document(path) == {"version": 1, "bans": []}
    assert os.listdir(path.parent) == [BAN_FILE_NAME]


def test_a_missing_file_is_no_document(tmp_path: Path) -> None:
    assert read_ban_document(tmp_path / BAN_FILE_NAME) is None
    assert read_ban_document(tmp_path / "no-such-folder" / BAN_FILE_NAME) is None


@pytest.mark.spec("BAN-8")
@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"version": 1, "bans": [', "not JSON"),
        (b"", "not JSON"),
        (b'{"version": 1, "bans": [], "version": 2}', "twice"),
        (b'{"version": NaN, "bans": []}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_a_file_that_is_not_json_is_refused_naming_it(
    tmp_path: Path, content: bytes, what: str
) -> None:
    path = tmp_path / BAN_FILE_NAME
    path.write_bytes(content)
    with pytest.raises(BanFileError) as info:
        read_ban_document(path)
    assert str(path) in str(info.value) and what in str(info.value)


@pytest.mark.spec("BAN-8")
def test_a_file_that_cannot_be_read_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / BAN_FILE_NAME
    folder.mkdir()  # a folder where the file should be
    plain = tmp_path / "plain"
    plain.write_text("{}")
    unreadable = tmp_path / "unreadable.json"
    unreadable.write_text("{}")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    for path in (folder, plain / BAN_FILE_NAME, tmp_path / "nul\0.json"):
        with pytest.raises(BanFileError) as info:
            read_ban_document(path)
        assert str(path) in str(info.value)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(BanFileError, match="Permission denied") as info:
        read_ban_document(unreadable)
    assert str(unreadable) in str(info.value)


@pytest.mark.spec("BAN-8")
@pytest.mark.skipif(os.geteuid() == 0, reason="the superuser reads every file")
def test_a_file_without_read_permission_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / BAN_FILE_NAME
    path.write_text("{}")
    path.chmod(0)
    with pytest.raises(BanFileError) as info:
        read_ban_document(path)
    assert str(path) in str(info.value)


@pytest.mark.spec("BAN-6")
def test_the_document_reaches_the_disk_before_the_rename_and_the_rename_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / BAN_FILE_NAME
    write_ban_document(path, document(0))
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(handle: int) -> None:
        status = os.fstat(handle)
        kind = "folder" if stat.S_ISDIR(status.st_mode) else "file"
        if kind == "file":
            # What goes to the disk is the whole new document, in a new file of the same folder.
            (written,) = [p for p in tmp_path.iterdir() if p.stat().st_ino == status.st_ino]
            assert written != path and json.loads(written.read_text()) == document(1)
            assert read_ban_document(path) == document(0)
        steps.append(f"fsync {kind}")
        real_fsync(handle)

    def replace(source: str, target: Path) -> None:
        assert Path(source).parent == tmp_path and target == path
        steps.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_ban_document(path, document(1))
    assert steps == ["fsync file", "rename", "fsync folder"]
    assert read_ban_document(path) == document(1)


@pytest.mark.spec("BAN-6")
@pytest.mark.parametrize("failing", ["fdopen", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / BAN_FILE_NAME
    write_ban_document(path, document(0))

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, _failing_fdopen if failing == "fdopen" else fail)
    with pytest.raises(BanFileError, match="No space left") as info:
        write_ban_document(path, document(1))
    assert str(path) in str(info.value)
    monkeypatch.undo()
    assert read_ban_document(path) == document(0)
    assert os.listdir(tmp_path) == [BAN_FILE_NAME]


def _failing_fdopen(handle: int, mode: str, encoding: str) -> object:
    """A file whose write fails half way, as on a full disk."""

    class Half:
        def __enter__(self) -> Half:
            return self

        def __exit__(self, *exc: object) -> None:
            os.close(handle)

        def write(self, text: str) -> None:
            os.write(handle, text[: len(text) // 2].encode())
            raise OSError(28, "No space left on device")

    return Half()


@pytest.mark.spec("BAN-6")
def test_a_write_that_cannot_happen_is_refused_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    for path in (blocker / BAN_FILE_NAME, tmp_path / "nul\0" / BAN_FILE_NAME):
        with pytest.raises(BanFileError) as info:
            write_ban_document(path, document(0))
        assert str(path) in str(info.value)
    occupied = tmp_path / "occupied"
    (occupied / BAN_FILE_NAME).mkdir(parents=True)
    (occupied / BAN_FILE_NAME / "keep").write_text("")  # a folder the rename cannot replace
    with pytest.raises(BanFileError) as info:
        write_ban_document(occupied / BAN_FILE_NAME, document(0))
    assert os.listdir(occupied) == [BAN_FILE_NAME]
    with pytest.raises(BanFileError, match="not JSON"):
        write_ban_document(tmp_path / BAN_FILE_NAME, {"until": float("nan")})
    assert not (tmp_path / BAN_FILE_NAME).exists()


PADDING = 4 << 20  # long writes: a kill lands inside one as often as between two

# Writes document(first), document(first + 1), ... over one file until it is killed.
WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_banfile import PADDING, document
from obscura_ref.banfile import write_ban_document
path, version = Path(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
while True:
    write_ban_document(path, document(version, PADDING))
    version += 1
"""


@pytest.mark.spec("BAN-6")
def test_a_writer_killed_at_any_moment_leaves_a_whole_document(tmp_path: Path) -> None:
    rng = random.Random(6)
    path = tmp_path / BAN_FILE_NAME
    started = time.monotonic()
    write_ban_document(tmp_path / "timing.json", document(0, PADDING))
    one_write = time.monotonic() - started  # kills spread over a few writes on any disk
    script = WRITER.format(tests=str(Path(__file__).parent))
    first, seen = 0, set()
    for kill in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(path), str(first)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            # A random moment: before the first write, inside one, or between two.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(rng.uniform(0.0, 3 * one_write))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        found = read_ban_document(path)  # never BanFileError: never a part of a file
        if found is None:
            assert first == 0, f"kill {kill}: the file is gone after a write"
            continue
        assert isinstance(found, dict)
        version = found["bans"][0]["until"] - 1_700_000_000
        assert found == document(version, PADDING), f"kill {kill}"
        assert version >= first - 1  # the one written last before the kill, or a later one
        seen.add(version)
        first = version + 1
    assert len(seen) >= 5  # most kills came after a write, not before the first
