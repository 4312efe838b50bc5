"""Specification of :mod:`chatcli.server.admission`: sliding windows at given times."""

from __future__ import annotations

from collections import deque

from chatcli.server.admission import give_back, take_slot


def test_a_window_allows_its_limit_then_refuses_until_the_oldest_falls_out():
    windows: dict[str, deque[float]] = {}
    assert take_slot(windows, "1.2.3.4", 10.0, 2, 5.0)
    assert take_slot(windows, "1.2.3.4", 11.0, 2, 5.0)
    assert not take_slot(windows, "1.2.3.4", 14.9, 2, 5.0)
    assert take_slot(windows, "1.2.3.4", 15.0, 2, 5.0)  # the one at 10.0 is out


def test_a_refused_event_is_not_counted():
    windows: dict[str, deque[float]] = {}
    take_slot(windows, "a", 0.0, 1, 1.0)
    for t in (0.1, 0.2, 0.3):
        assert not take_slot(windows, "a", t, 1, 1.0)
    assert list(windows["a"]) == [0.0]


def test_each_key_has_its_own_window():
    windows: dict[str, deque[float]] = {}
    assert take_slot(windows, "a", 0.0, 1, 1.0)
    assert take_slot(windows, "b", 0.0, 1, 1.0)
    assert not take_slot(windows, "a", 0.5, 1, 1.0)


def test_keys_quiet_for_a_window_are_forgotten():
    windows: dict[str, deque[float]] = {}
    for i in range(1000):
        take_slot(windows, f"10.0.{i // 256}.{i % 256}", float(i) / 1000, 1, 1.0)
    take_slot(windows, "later", 5.0, 1, 1.0)
    assert list(windows) == ["later"]


def test_a_slot_given_back_is_free_again():
    windows: dict[str, deque[float]] = {}
    assert take_slot(windows, "a", 1.0, 1, 10.0)
    give_back(windows, "a", 1.0)
    assert take_slot(windows, "a", 2.0, 1, 10.0)
    give_back(windows, "missing", 1.0)  # nothing to give back: no error
