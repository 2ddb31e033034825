"""What every subcommand shares: the user-error type, progress bars and the closing "written" block.

A user mistake (a wrong path, a missing option, a file of the wrong kind) becomes one line,
``depth-completion <command>: error: <what is wrong> (<the fix>)``, and exit status 2: raise :class:`CliError`
(or one of the project's own input errors, see :data:`USER_ERROR_NAMES`) and ``cli.main`` prints it.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# The project's exception classes that always mean "bad input from the user" (matched by name along the MRO, so
# cli.main needs no import of torch or rclpy to recognise them).
USER_ERROR_NAMES = frozenset({'CliError', 'WeightsError', 'CameraModelError', 'DataError', 'ConfigError',
                              'UnsupportedEncodingError'})
# Path mistakes: the message names the path, which is the fix.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class CliError(Exception):
    """A user mistake on the command line; the message says what is wrong and how to fix it."""


def is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, PATH_ERRORS):
        return True
    return any(cls.__name__ in USER_ERROR_NAMES and cls.__module__.startswith('depth_completion_ros')
               for cls in type(exc).__mro__)


def error_line(exc: BaseException) -> str:
    """The exception as one line (multi-line messages are joined; the class name only when the text is empty)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f'{exc.strerror}: {exc.filename}'
    else:
        text = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    text = ' '.join(part.strip() for part in text.splitlines() if part.strip())
    return text or type(exc).__name__


def close_progress_bars() -> None:
    """End every open bar's line, so an error printed next starts on a line of its own."""
    tqdm_module = sys.modules.get('tqdm')
    if tqdm_module is not None:
        for bar in list(getattr(tqdm_module.tqdm, '_instances', ())):
            bar.close()


def progress(iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = '',
             unit: str = 'frame', **kwargs: Any) -> Any:
    """A tqdm bar on stderr (stdout stays clean for JSON); quiet when ``TQDM_DISABLE`` is set."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, **kwargs)


def format_size(num_bytes: float) -> str:
    for unit in ('B', 'kB', 'MB', 'GB'):
        if num_bytes < 1000 or unit == 'GB':
            return f'{num_bytes:.0f} {unit}' if unit == 'B' else f'{num_bytes:.1f} {unit}'
        num_bytes /= 1000.0
    raise AssertionError('unreachable')


def path_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def written_block(items: Sequence[tuple[str, str | Path | None]], title: str = 'written') -> str:
    """``title:`` then one aligned line per output: what it is, where it is, its size (missing ones are skipped)."""
    rows = [(label, Path(path)) for label, path in items if path is not None and Path(path).exists()]
    if not rows:
        return f'{title}: nothing'
    width = max(len(label) for label, _ in rows)
    lines = [f'{title}:']
    for label, path in rows:
        suffix = '/' if path.is_dir() else ''
        count = f', {sum(1 for p in path.iterdir())} files' if path.is_dir() else ''
        lines.append(f'  {label:<{width}}  {path}{suffix}  ({format_size(path_size(path))}{count})')
    return '\n'.join(lines)


def print_written(items: Sequence[tuple[str, str | Path | None]], title: str = 'written') -> None:
    print(written_block(items, title), flush=True)


# The rgbd_camera preset's range: a depth camera's image read with the wrong --depth-scale lands far outside it.
DEPTH_CAMERA_RANGE_M = (0.2, 10.0)


def depth_scale_warning(source: Any, command: str) -> str | None:
    """One line when the first frame of a depth-camera ``source`` read with its ``depth_scale`` puts most
    depths outside DEPTH_CAMERA_RANGE_M, naming the likely ``--depth-scale``; None otherwise (and for sources
    without a depth scale). Printed by the caller on stderr before any work: ``--depth-scale 1`` on millimetre
    depth otherwise scores nothing or writes a bag of depths hundreds of metres away, without a word."""
    from depth_completion_ros.core.units import check_depth_units, likely_depth_scale

    scale = getattr(source, 'depth_scale', None)
    if scale is None or not getattr(source, 'depth_camera', False) or len(source) == 0:
        return None
    low, high = DEPTH_CAMERA_RANGE_M
    problem = check_depth_units(source[0].sparse, low, high)
    if problem is None:
        return None
    line = f'depth-completion {command}: warning: with --depth-scale {scale:g} (stored units per metre), ' \
           f'{problem.describe(low, high)}'
    if problem.factor is not None:
        line += f'; the likely --depth-scale is {likely_depth_scale(scale, problem.factor):g}'
    return line


def add_old_name(parser: Any, old: str, current: Any) -> None:
    """Keep ``old`` working for one release as a hidden alias of the option ``current`` (the Action that
    ``add_argument`` returned): same destination, type and arity, absent from ``--help``, and one note on
    stderr when used, so scripts written against the old name keep running while the help shows one name
    across commands."""
    import argparse

    new = current.option_strings[0]

    class _Renamed(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            print(f'note: {old} is now {new} (the old name goes in the next release)', file=sys.stderr)
            setattr(namespace, current.dest, values)

    parser.add_argument(old, dest=current.dest, type=current.type, nargs=current.nargs, metavar=current.metavar,
                        action=_Renamed, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
