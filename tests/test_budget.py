"""The memory budget's rules on their own (spec/node.md section 2.1), without sockets."""

from __future__ import annotations

import pytest

from obscura_ref.budget import MemoryBudget


@pytest.mark.spec("NODE-16")
def test_the_pressure_begins_past_three_quarters_and_ends_at_half() -> None:
    budget = MemoryBudget(1000, 10)
    assert budget.share == 100
    assert not budget.update_pressure(750) and not budget.pressure  # three quarters: not past
    assert budget.update_pressure(751) and budget.pressure
    assert not budget.update_pressure(501) and budget.pressure  # no flapping in between
    assert budget.update_pressure(500) and not budget.pressure
    assert budget.near(751) and not budget.near(750)


@pytest.mark.spec("NODE-16")
def test_under_pressure_only_a_connection_within_its_share_is_read() -> None:
    budget = MemoryBudget(1000, 10)
    assert budget.may_read(10_000)  # no pressure: every one
    budget.update_pressure(900)
    assert budget.may_read(100) and not budget.may_read(101)


@pytest.mark.spec("NODE-14")
def test_the_connection_holding_most_is_closed_the_lowest_number_among_equals() -> None:
    assert MemoryBudget.victim([(3, 10), (1, 50), (2, 50), (4, 20)]) == 1
    assert MemoryBudget.victim([(5, 0), (6, 7)]) == 6
    assert MemoryBudget.victim([(5, 0)]) is None  # none holds a byte: none to close
    assert MemoryBudget.victim([]) is None
    budget = MemoryBudget(1000, 10)
    assert budget.over(1001) and not budget.over(1000)


@pytest.mark.spec("NODE-17")
def test_the_events_fill_their_half_past_half_and_empty_it_at_a_quarter() -> None:
    budget = MemoryBudget(1000, 10)
    assert not budget.update_events(500) and not budget.events_full
    assert budget.update_events(501) and budget.events_full
    assert not budget.update_events(251) and budget.events_full
    assert budget.update_events(250) and not budget.events_full
