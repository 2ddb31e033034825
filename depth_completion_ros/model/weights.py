"""LRRU weights as safetensors with a JSON metadata block; shipped weights resolved by name.

File layout: a plain safetensors file whose ``__metadata__`` holds one key, ``lrru``, with a JSON object:
``{"format": 1, "variant": "mini", "config": {...LRRUConfig...}, "prefill": "ipbasic", "training": {...},
"package_version": "x.y.z", ...user metadata}``. ``prefill`` names the ``core.prefill`` method the network was
trained on (it learned corrections of *that* fill); inference reads it back (``DepthCompleter(prefill_method=
'auto')``). Files written before the key existed were trained with ip_basic. Nothing is ever unpickled (no
``torch.load``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..core.prefill import DEFAULT_PREFILL, check_prefill_method
from .config import LRRUConfig, get_config
from .lrru import LRRU

FORMAT_VERSION = 1
METADATA_KEY = 'lrru'
SHIPPED_DIR = Path(__file__).resolve().parents[1] / 'weights'


def user_weights_dir() -> Path:
    """Where imported weights go and are found by name: ``$XDG_DATA_HOME/depth_completion_ros/weights``
    (``~/.local/share/...`` when unset), the XDG place for a user's application data."""
    base = os.environ.get('XDG_DATA_HOME') or str(Path.home() / '.local' / 'share')
    return Path(base) / 'depth_completion_ros' / 'weights'


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or does not fit the requested variant."""


def _package_version() -> str:
    try:
        from depth_completion_ros import __version__
        return str(__version__)
    except Exception:  # pragma: no cover - only when the package is half-installed
        return 'unknown'


def save_weights(model: LRRU, path: str | Path, metadata: dict[str, Any] | None = None,
                 prefill: str | None = None) -> Path:
    """Write ``model``'s state dict (CPU, contiguous) and metadata; returns the path. ``prefill`` (or
    ``metadata['prefill']``; default ip_basic) is the prefill method the network was trained with."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = dict(metadata or {})
    info['prefill'] = check_prefill_method(prefill or str(info.get('prefill', DEFAULT_PREFILL)))
    info.update({'format': FORMAT_VERSION, 'variant': model.config.name, 'config': model.config.to_dict(),
                 'package_version': _package_version()})
    info.setdefault('training', {})
    tensors = {name: tensor.detach().to('cpu').contiguous() for name, tensor in model.state_dict().items()}
    # Written beside the target and renamed: an interrupted save never leaves a truncated weights file.
    partial = path.with_name(f'.{path.name}.partial')
    try:
        save_file(tensors, str(partial), metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata block of a weights file, without loading tensors (``prefill`` filled in for old files)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f'weights file not found: {path}')
    try:
        with safe_open(str(path), framework='pt') as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise WeightsError(f'{path} is not a readable safetensors file ({error})') from error
    if raw is None:
        raise WeightsError(f'{path} has no {METADATA_KEY!r} metadata block; not an LRRU weights file of this package')
    try:
        info = json.loads(raw)
    except json.JSONDecodeError as error:
        raise WeightsError(f'{path}: metadata block is not valid JSON ({error})') from error
    if not isinstance(info, dict) or 'variant' not in info:
        raise WeightsError(f'{path}: metadata block lacks the variant name')
    info.setdefault('prefill', DEFAULT_PREFILL)
    return info


def resolve_weights(path_or_name: str | Path) -> Path:
    """An existing file path, a shipped name (``lrru_mini`` -> ``weights/lrru_mini.safetensors``) or the name of
    weights imported into :func:`user_weights_dir` (``lrru_base_authors``); shipped names win."""
    candidate = Path(path_or_name).expanduser()
    if candidate.is_file():
        return candidate
    name = str(path_or_name)
    file_name = name if name.endswith('.safetensors') else f'{name}.safetensors'
    for folder in (SHIPPED_DIR, user_weights_dir()):
        if (folder / file_name).is_file():
            return folder / file_name
    available = ', '.join(w['name'] for w in list_shipped_weights() + list_imported_weights()) or 'none yet'
    raise WeightsError(f'weights {name!r} not found as a file, a shipped or an imported name (available: '
                       f'{available}; import the LRRU authors\' checkpoints with `depth-completion weights import`)')


def load_model(path_or_name: str | Path, variant: str | None = None,
               device: str | torch.device = 'cpu') -> tuple[LRRU, dict[str, Any]]:
    """Build the variant recorded in the file (checked against ``variant`` when given), load, ``eval()``."""
    from safetensors.torch import load_file

    path = resolve_weights(path_or_name)
    info = read_metadata(path)
    stored_variant = str(info['variant'])
    if variant is not None and variant.lower() != stored_variant.lower():
        raise WeightsError(f'{path} holds LRRU-{stored_variant} weights, but variant {variant!r} was requested')
    try:
        config = LRRUConfig.from_dict(info['config']) if 'config' in info else get_config(stored_variant)
    except (TypeError, KeyError) as error:
        raise WeightsError(f'{path}: cannot build the model from its metadata ({error})') from error
    try:
        state = load_file(str(path), device='cpu')
    except Exception as error:
        raise WeightsError(f'{path}: corrupt tensor data ({error})') from error
    model = LRRU(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f'{path} does not fit LRRU-{config.name}: missing {sorted(missing)[:5]}, '
                           f'unexpected {sorted(unexpected)[:5]}')
    return model.to(device).eval(), info


def _list_weights(folder: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if not folder.is_dir():
        return entries
    for path in sorted(folder.glob('*.safetensors')):
        try:
            info = read_metadata(path)
            variant: str | None = str(info['variant'])
            prefill: str | None = str(info['prefill'])
        except WeightsError:
            variant = prefill = None
        entries.append({'name': path.stem, 'path': str(path), 'variant': variant, 'prefill': prefill,
                        'size_bytes': path.stat().st_size})
    return entries


def list_shipped_weights() -> list[dict[str, Any]]:
    """``[{'name', 'path', 'variant', 'prefill', 'size_bytes'}]`` per ``weights/*.safetensors`` (unreadable:
    variant None)."""
    return _list_weights(SHIPPED_DIR)


def list_imported_weights() -> list[dict[str, Any]]:
    """The same for the weights imported into :func:`user_weights_dir` (``depth-completion weights import``)."""
    return _list_weights(user_weights_dir())


def import_authors_checkpoint(checkpoint: str | Path, variant: str, out: str | Path | None = None) -> Path:
    """Convert an LRRU authors' checkpoint (``model/authors.py``) into this package's weights file: ``out``, or
    ``lrru_<variant>_authors.safetensors`` in :func:`user_weights_dir`. The prefill recorded is theirs."""
    from .authors import read_authors_checkpoint

    state, metadata = read_authors_checkpoint(checkpoint, variant)
    model = LRRU(get_config(variant))
    model.load_state_dict(state)
    target = Path(out).expanduser() if out is not None else user_weights_dir() / f'lrru_{variant}_authors.safetensors'
    if target.suffix != '.safetensors':
        raise WeightsError(f'{target}: the output must be a .safetensors file')
    return save_weights(model.eval(), target, metadata, prefill=str(metadata['prefill']))
