"""Transition tables as data, and their renderings for spec/ (Markdown tables and Mermaid).

A machine is a dict from (state, input) to a ``Rule``. Running it is a lookup; the same dicts
generate the tables and diagrams embedded in spec/, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741 (the input alphabet)


@dataclass(frozen=True)
class Rule(Generic[S]):
    """What a machine does for one (state, input) pair.

    ``handler`` names the method that does it; ``targets`` lists every state it may leave the
    machine in (the method chooses among them); ``requirements`` cites the spec."""

    handler: str
    targets: tuple[S, ...]
    requirements: tuple[str, ...]
    summary: str


def markdown_table(table: Mapping[tuple[S, I], Rule[S]], states: type[S], inputs: type[I]) -> str:
    """One row per (state, input) pair in declaration order."""
    rows = ["| state | input | next state | what happens | rule |", "|---|---|---|---|---|"]
    for state in states:
        for input_ in inputs:
            rule = table.get((state, input_))
            if rule is None:
                continue
            targets = " or ".join(f"`{t.value}`" for t in rule.targets)
            rows.append(
                f"| `{state.value}` | `{input_.value}` | {targets} | {rule.summary} | "
                f"{', '.join(rule.requirements)} |"
            )
    return "\n".join(rows)


def mermaid(
    table: Mapping[tuple[S, I], Rule[S]],
    states: type[S],
    inputs: type[I],
    initial: tuple[S, ...],
    final: tuple[S, ...] = (),
) -> str:
    """A Mermaid state diagram: one edge per (state, next state), labelled with its inputs.
    Self-loops are left out to keep the picture readable; the table lists them."""
    edges: dict[tuple[S, S], list[str]] = {}
    for state in states:
        for input_ in inputs:
            rule = table.get((state, input_))
            if rule is None:
                continue
            for target in rule.targets:
                if target is not state:
                    edges.setdefault((state, target), []).append(input_.value)
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f"    [*] --> {state.value}" for state in initial]
    for (source, target), labels in edges.items():
        lines.append(f"    {source.value} --> {target.value} : {', '.join(labels)}")
    lines += [f"    {state.value} --> [*]" for state in final]
    lines.append("```")
    return "\n".join(lines)
