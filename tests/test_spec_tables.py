"""The tables and diagrams of spec/ that are generated from the code are current, every one is
embedded, and every ID the code's tables cite is defined."""

from __future__ import annotations

import re
from pathlib import Path

from obscura_ref.machines.connection import CONNECTION_TRANSITIONS
from obscura_ref.machines.handshake import HANDSHAKE_TRANSITIONS
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.specgen import BLOCKS, refresh
from obscura_ref.trace import check
from obscura_ref.wire import ERROR_REQUIREMENTS

ROOT = Path(__file__).resolve().parent.parent


def test_generated_blocks_are_current() -> None:
    assert refresh(ROOT, write=False) == [], "run `obscura-ref spec check` to regenerate"


def test_every_generated_block_is_embedded_once() -> None:
    text = "".join(path.read_text() for path in sorted((ROOT / "spec").glob("*.md")))
    for name in BLOCKS:
        assert text.count(f"<!-- generated: {name} -->") == 1, name


def test_a_stale_block_is_found_and_rewritten(tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    chapter = tmp_path / "spec" / "x.md"
    chapter.write_text("# X\n<!-- generated: close-reasons -->\nold\n<!-- end generated -->\n")
    assert refresh(tmp_path, write=False) == ["spec/x.md: generated blocks are stale"]
    assert refresh(tmp_path, write=True) == []
    assert "`ping_timeout`" in chapter.read_text() and "old" not in chapter.read_text()
    assert refresh(tmp_path, write=False) == []


def test_every_id_the_code_tables_cite_is_defined() -> None:
    defined = set(check(ROOT).requirements)
    cited = {req for rule in CONNECTION_TRANSITIONS.values() for req in rule.requirements}
    cited |= {req for rule in HANDSHAKE_TRANSITIONS.values() for req in rule.requirements}
    cited |= {reason.requirement for reason in CloseReason}
    cited |= set(ERROR_REQUIREMENTS.values())
    assert cited <= defined, cited - defined


def test_diagrams_show_every_state_change_of_the_tables() -> None:
    text = (ROOT / "spec" / "connection.md").read_text()
    for (state, _), rule in CONNECTION_TRANSITIONS.items():
        for target in rule.targets:
            if target is not state:
                assert re.search(rf"{state.value} --> {target.value} :", text), (state, target)


def test_close_reason_codes_are_unique() -> None:
    codes = [reason.code for reason in CloseReason]
    assert len(codes) == len(set(codes))


def test_added_types_stay_outside_the_origins_range() -> None:
    from obscura_ref.wire import MessageType
    from obscura_ref.wire.registry import ADDED_TYPES

    added = [t for t in MessageType if t.value > 0x17]
    assert added and all(t.value in ADDED_TYPES for t in added)
    assert all(t.value <= 0x17 for t in MessageType if t.value not in ADDED_TYPES)
