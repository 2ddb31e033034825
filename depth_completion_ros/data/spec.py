"""The ``--data`` spec: ``kind:location[?key=value&key=value]``, and frame selection by frame number.

``frames`` selects frames by the number in their name (KITTI ``0000000012.png`` -> 12, 7-Scenes
``frame-000150`` -> 150, NYU ``3.pgm`` -> 3): a comma list of numbers and inclusive ranges, open ends allowed,
optionally with a step: ``frames=0-35``, ``frames=40-``, ``frames=0-39:4,52``. Frames whose name has no number
are selected by their position in the folder's sorted order.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from depth_completion_ros.data.errors import DataError

T = TypeVar('T')
_RANGE = re.compile(r'^(\d*)(-?)(\d*)(?::(\d+))?$')


@dataclass(frozen=True)
class FrameSelection:
    """Union of inclusive ranges ``(first, last, step)``; ``last`` None = open end. Empty = every frame."""
    ranges: tuple[tuple[int, int | None, int], ...] = field(default=())

    @classmethod
    def parse(cls, text: str | None) -> FrameSelection:
        if not text:
            return cls()
        ranges = []
        for part in filter(None, (p.strip() for p in text.split(','))):
            match = _RANGE.match(part)
            if match is None or not (match.group(1) or match.group(3)):
                raise DataError(f'frames={text!r}: expected numbers and ranges like 0-35, 40-, 0-39:4 (comma list)')
            first_text, dash, last_text, step_text = match.groups()
            first = int(first_text) if first_text else 0
            last = (int(last_text) if last_text else None) if dash else first
            step = int(step_text) if step_text else 1
            if step < 1 or (last is not None and last < first):
                raise DataError(f'frames={text!r}: range {part!r} is empty; write first-last with first <= last')
            ranges.append((first, last, step))
        return cls(tuple(ranges))

    def __contains__(self, number: int) -> bool:
        if not self.ranges:
            return True
        return any(first <= number and (last is None or number <= last) and (number - first) % step == 0
                   for first, last, step in self.ranges)

    def select(self, items: Sequence[T], numbers: Sequence[int]) -> list[T]:
        return [item for item, number in zip(items, numbers, strict=True) if number in self]


def frame_number(name: str, position: int) -> int:
    """The last integer in a frame name ('frame-000150' -> 150); the position when the name has none."""
    digits = re.findall(r'\d+', name)
    return int(digits[-1]) if digits else position


@dataclass
class DataSpec:
    kind: str
    location: str
    options: dict[str, str]

    @classmethod
    def parse(cls, spec: str, kinds: Sequence[str]) -> DataSpec:
        kind, sep, rest = spec.partition(':')
        if not sep or kind not in kinds:
            raise DataError(f'data spec {spec!r}: write <kind>:<location>[?frames=0-35] with kind one of '
                            f'{", ".join(kinds)}')
        location, query_sep, query = rest.partition('?')
        options: dict[str, str] = {}
        if query_sep:
            for item in filter(None, query.split('&')):
                key, eq, value = item.partition('=')
                if not eq or not key:
                    raise DataError(f'data spec {spec!r}: option {item!r} is not key=value')
                options[key.strip()] = value.strip()
        return cls(kind, location, options)

    def take(self, key: str, default: str | None = None) -> str | None:
        """Remove and return one option (so :meth:`check_used` can reject unknown ones)."""
        return self.options.pop(key, default)

    def check_used(self) -> None:
        if self.options:
            raise DataError(f'{self.kind}:{self.location}: unknown option(s) {", ".join(sorted(self.options))}; '
                            'see docs/DATA.md for the options of each kind')
