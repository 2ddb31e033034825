"""Output folders that never destroy what the user did not create.

Every command that writes a folder (``demo --out``, ``make-bag --out``, ``record --out``, ``eval --save``,
``train --out``, ``preview --out``) goes through here:

- :func:`check_output_dir` refuses, in one line naming the fix, a folder that is not ours to replace: a
  non-empty folder without this project's marker file naming the same command (``--overwrite`` replaces it),
  and outright, even with ``--overwrite``, ``/``, the home folder, the current folder or any folder above it,
  a folder holding a ``.git`` and the folder of this package's source or any folder above it.
- :class:`OutputDir` writes into a hidden temporary sibling (same file system, so the final step is a
  rename) and puts it in place only when the command succeeds; a failed run leaves the previous output, or
  nothing, never a half-written folder. A command may also keep what it has after Ctrl-C or a failure it
  reports itself (``commit(status='interrupted')``): the marker then says so.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path
from types import TracebackType

from depth_completion_ros.tools.common import CliError

MARKER_NAME = '.depth_completion_output.json'
_PARTIAL_TAG = '.partial-'   # <parent>/.<name>.partial-<pid>: the folder being written
_OLD_TAG = '.replaced-'      # <parent>/.<name>.replaced-<pid>: the previous output while it is swapped out


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder this project wrote, or None (no marker, or one that is not ours)."""
    try:
        marker = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get('command'), str) else None


def write_marker(folder: Path, command: str, status: str) -> None:
    marker = {'command': command, 'status': status,
              'written': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
    (folder / MARKER_NAME).write_text(json.dumps(marker) + '\n')


def protected_reason(folder: Path) -> str | None:
    """Why ``folder`` (resolved) may never be an output folder, or None. These hold far more than any output
    could, so no option unlocks them."""
    if folder == Path(folder.anchor):
        return 'is the file-system root'
    if folder == Path.home().resolve():
        return 'is your home folder'
    if folder == Path.cwd().resolve() or folder in Path.cwd().resolve().parents:
        return 'is the current folder or a folder above it'
    if (folder / '.git').exists():
        return 'is a repository (it holds .git)'
    package = Path(__file__).resolve().parents[1]        # its parents: the checkout or site-packages, and up
    if folder == package or folder in package.parents:
        return "holds this package's source"
    return None


def check_output_dir(path: str | Path, command: str, overwrite: bool = False,
                     resume_file: str | None = None) -> Path:
    """The resolved output folder, or :class:`CliError` when writing there could destroy the user's files.

    Accepted: a path that does not exist, an empty folder, a previous output of ``command`` (its marker), a
    folder holding ``resume_file`` (train's checkpoint, written before outputs had markers), and with
    ``overwrite`` any other folder that is not protected."""
    option = '--save' if command == 'eval' else '--out'
    folder = Path(path).expanduser().resolve()
    reason = protected_reason(folder)
    if reason is not None:
        raise CliError(f'{option} {path}: refused, it {reason}; name a new folder, e.g. {option} '
                       f'{command.replace("-", "_")}_output')
    if not folder.exists() or (resume_file is not None and (folder / resume_file).is_file()):
        return folder
    if not folder.is_dir():
        raise CliError(f'{option} {path}: is a file, not a folder; name a new folder')
    if not any(folder.iterdir()):
        return folder
    marker = read_marker(folder)
    if marker is not None and marker['command'] == command:
        return folder
    if overwrite:
        return folder
    what = f'the output of `{marker["command"]}`' if marker else 'files this command did not write'
    raise CliError(f'{option} {path}: the folder is not empty and holds {what}; name a new folder, or pass '
                   '--overwrite to replace it')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    return True


def remove_stale_partials(final: Path) -> None:
    """Clean up after runs of ``final`` that were killed (their process is gone): a previous output that was
    swapped aside goes back in place when nothing replaced it; temporary folders are removed only when they
    carry our marker, so nothing of the user's is touched."""
    for tag in (_OLD_TAG, _PARTIAL_TAG):
        for candidate in sorted(final.parent.glob(f'.{final.name}{tag}*')):
            pid_text = candidate.name.rsplit(tag, 1)[1]
            if not pid_text.isdigit() or _pid_alive(int(pid_text)):
                continue
            if tag == _OLD_TAG and not final.exists():
                candidate.rename(final)
            elif read_marker(candidate) is not None:
                shutil.rmtree(candidate, ignore_errors=True)


class OutputDir:
    """``with OutputDir(path, 'demo', overwrite) as out:`` write into ``out.work``, then ``out.commit()``.

    Leaving the block without a commit (an exception, Ctrl-C the command did not handle) removes the temporary
    folder and keeps the previous output as it was. ``commit`` swaps the finished folder in: the previous
    output is renamed aside first and removed only after the new one is in place."""

    def __init__(self, path: str | Path, command: str, overwrite: bool = False, create: bool = True) -> None:
        """``create=False``: the writer creates ``work`` itself (rosbag2 writers refuse an existing folder and
        name their file after the folder, so ``work`` is then ``<temporary folder>/<final name>``)."""
        self.command = command
        self.final = check_output_dir(path, command, overwrite)
        self.temporary = self.final.parent / f'.{self.final.name}{_PARTIAL_TAG}{os.getpid()}'
        self.work = self.temporary if create else self.temporary / self.final.name
        self.committed = False

    def __enter__(self) -> OutputDir:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.discard()

    def open(self) -> OutputDir:
        """Make room for the temporary folder (and create it unless the writer does)."""
        self.final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.final)
        shutil.rmtree(self.temporary, ignore_errors=True)
        self.temporary.mkdir()
        write_marker(self.temporary, self.command, 'writing')  # what makes a killed run's leftover ours
        return self

    def discard(self) -> None:
        """Remove what was written unless it was committed (the previous output stays as it was)."""
        if not self.committed:
            shutil.rmtree(self.temporary, ignore_errors=True)

    def commit(self, status: str = 'complete') -> Path:
        """Put the written folder at its final path; ``status`` (complete, interrupted, failed) goes into the
        marker, so a later run and the user can tell a cut run from a finished one."""
        write_marker(self.work, self.command, status)
        old = self.final.parent / f'.{self.final.name}{_OLD_TAG}{os.getpid()}'
        if self.final.is_dir():
            if any(self.final.iterdir()):
                self.final.rename(old)
            else:
                self.final.rmdir()
        self.work.rename(self.final)
        self.committed = True
        shutil.rmtree(old, ignore_errors=True)
        if self.temporary != self.work:
            shutil.rmtree(self.temporary, ignore_errors=True)
        return self.final


def prepare_in_place(path: str | Path, command: str, overwrite: bool = False,
                     resume_file: str | None = None) -> Path:
    """For commands that must write in place (train: a cut run's checkpoints are what ``--resume`` continues
    from, so they may not vanish with a temporary folder): the same refusals; ``overwrite`` empties the folder
    first; the marker goes in at the start."""
    folder = check_output_dir(path, command, overwrite, resume_file)
    if overwrite and folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if read_marker(folder) is None:
        write_marker(folder, command, 'writing')
    return folder
