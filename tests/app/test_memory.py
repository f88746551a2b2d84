"""The entry points' garbage-collector freeze: start-up objects out of sight, later ones not."""

from __future__ import annotations

import gc
import weakref

from vitalstation.app.memory import freeze_long_lived_objects


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freeze_hides_start_up_objects_and_still_collects_later_cycles() -> None:
    long_lived = [_Node() for _ in range(100)]
    try:
        freeze_long_lived_objects()
        assert gc.get_freeze_count() >= len(long_lived)
        tracked_after = {id(o) for o in gc.get_objects()}
        assert not any(id(node) in tracked_after for node in long_lived)  # never walked again

        a, b = _Node(), _Node()  # a cycle made after start-up is still collected
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
