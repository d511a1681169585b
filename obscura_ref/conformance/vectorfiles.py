"""Writing generated vector files and telling when a checked-in one is stale, for every kind
of vector (codec, session, decision)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

VECTOR_DIR = Path("conformance") / "vectors"


def write_rendered(root: Path, names: Iterable[str], render: Callable[[str], str]) -> list[Path]:
    """Write ``render(name)`` to each vector file ``name`` under ``root``."""
    paths = []
    for name in names:
        path = root / VECTOR_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


def stale(root: Path, names: Iterable[str], render: Callable[[str], str]) -> list[str]:
    """A failure for each vector file that is missing or differs from ``render(name)``."""
    failures = []
    for name in names:
        path = root / VECTOR_DIR / name
        if not path.is_file():
            failures.append(f"{VECTOR_DIR / name} is missing; run `obscura-ref vectors generate`")
        elif path.read_text(encoding="utf-8") != render(name):
            failures.append(
                f"{VECTOR_DIR / name} differs from the generator; run `obscura-ref vectors "
                "generate` and review the diff"
            )
    return failures
