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

# The one table of ``--data``/``--from`` kinds: kind -> (how it is written, what it reads). Every command's help
# and every "unknown kind" error is generated from it, so they cannot disagree (docs/DATA.md has the options).
DATA_KINDS: dict[str, tuple[str, str]] = {
    'synthetic': ('synthetic:street|room', 'generated street (camera + LiDAR) or room (RGB-D) scenes'),
    'kitti-dc': ('kitti-dc:DIR', 'KITTI depth completion: velodyne_raw + image (+ groundtruth)'),
    'kitti-dc-gt': ('kitti-dc-gt:DIR', 'KITTI depth completion ground truth only, LiDAR input simulated from it'),
    'kitti-object': ('kitti-object:DIR', 'KITTI object: image_2/, velodyne/, calib/'),
    'kitti-raw': ('kitti-raw:DIR', "a KITTI raw drive: image_02/data, velodyne_points/data, the day's calib"),
    'kitti-raw-accum': ('kitti-raw-accum:DIR', 'kitti-raw with targets accumulated from neighbouring scans'),
    '7scenes': ('7scenes:DIR', 'a Microsoft 7-Scenes sequence (frame-*.color.jpg + frame-*.depth.png)'),
    'rgbd': ('rgbd:DIR', 'an RGB-D folder: color/ + depth/ (16-bit PNG/PGM), intrinsics.json'),
    'bag': ('bag:PATH', 'a rosbag2: camera image + camera_info + points or depth image'),
}


def kinds_help(kinds: Sequence[str] | None = None, syntax: dict[str, str] | None = None) -> str:
    """``synthetic:street|room, kitti-dc:DIR, ...``: how each of ``kinds`` (default: all) is written, in table
    order; ``syntax`` overrides the written form for one command (make-bag's plain ``synthetic``)."""
    names = [name for name in DATA_KINDS if kinds is None or name in kinds]
    return ', '.join((syntax or {}).get(name, DATA_KINDS[name][0]) for name in names)


def kinds_table(kinds: Sequence[str] | None = None, syntax: dict[str, str] | None = None) -> str:
    """One line per kind: its written form and what it reads (for ``--help`` epilogs and the README)."""
    names = [name for name in DATA_KINDS if kinds is None or name in kinds]
    rows = [((syntax or {}).get(name, DATA_KINDS[name][0]), DATA_KINDS[name][1]) for name in names]
    width = max(len(form) for form, _ in rows)
    return '\n'.join(f'  {form:<{width}}  {what}' for form, what in rows)


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
    def parse(cls, spec: str, kinds: Sequence[str] | None = None, syntax: dict[str, str] | None = None) -> DataSpec:
        """``kinds``: the kinds the command accepts (default: every kind of :data:`DATA_KINDS`)."""
        kind, sep, rest = spec.partition(':')
        accepted = list(DATA_KINDS) if kinds is None else kinds
        if not sep and (syntax or {}).get(kind) == kind:  # a kind written without a location (make-bag synthetic)
            sep = ':'
        if not sep or kind not in accepted:
            raise DataError(f'data spec {spec!r}: write <kind>:<location>[?frames=0-35] with kind one of '
                            f'{kinds_help(accepted, syntax)}')
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
