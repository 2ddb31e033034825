"""The LRRU authors' checkpoints: their state-dict names mapped onto this package's modules, and the importer.

Our modules are the authors' network block for block (``backbone.py``, ``tdu.py``) under names that say what
each block does; this table is the one place where their names meet ours. Every key of their state dict maps to
exactly one key of ours with the same shape, and back (``test/test_authors_checkpoints.py``):

================================================  ==========================================================
theirs (``model_dcnv2.py``)                       ours
================================================  ==========================================================
``conv_img`` / ``conv_lidar``                     ``backbone.rgb_stem`` / ``backbone.depth_stem``
``layer{n}_img`` / ``layer{n}_lidar`` (n = 1..5)  ``backbone.rgb_stages.{n-1}`` / ``backbone.depth_stages.{n-1}``
  ``.{j}.downsample``                               ``.{j}.shortcut``
``guide{n}`` (n = 1..4)                           ``backbone.guides.{n-1}.fuse``
``layer4d``, ``layer3d``, ``layer2d``, ``layer1d``  ``backbone.decoder.0`` .. ``backbone.decoder.3``
``upproj{i}`` (i = 0..2)                          ``backbone.guidance_heads.{i}``
``conv``                                          ``backbone.full_resolution_guide``
``weight_offset{i}`` (i = 0..3)                   ``updates.{i}``
  ``.convd1``, ``.convd2`` / ``.convf1``, ``.convf2``  ``.depth_encoder.0``, ``.1`` / ``.guide_encoder.0``, ``.1``
  ``.conv`` / ``.ref``                              ``.fuse.0`` / ``.fuse.1``
  ``.conv_weight`` / ``.conv_offset``               ``.weight_head`` / ``.offset_head``
``Post_process.w`` / ``Post_process.b``           ``aggregation.weight`` / ``aggregation.bias``
================================================  ==========================================================

Inside a block their ``Basic2d`` is ``conv.0`` (+ ``conv.bn``), ours ``0`` (+ ``1``); their ``Basic2dTrans`` is
``conv``/``bn``, ours ``0``/``1``. Their stochastic-depth ``prob`` is not stored in the file: it comes from our
variant table, which holds their validation configs' values (Mini 1.0, the others 0.5).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .config import VARIANTS, get_config

AUTHORS_PREFILL = 'lrru_authors'
PROVENANCE = 'trained by the LRRU authors on KITTI depth completion; not shipped with this package'
AUTHORS_URL = 'https://github.com/YufeiWang777/LRRU'


def _basic2d(prefix: str) -> Callable[[re.Match], str]:
    """Their ``Basic2d`` (``conv.0`` conv, ``conv.bn`` BN) -> our ``Sequential`` (``0`` conv, ``1`` BN)."""
    return lambda m: f'{prefix(m) if callable(prefix) else prefix}.{"0" if m["part"] == "0" else "1"}.{m["leaf"]}'


_DECODER = {'4': 0, '3': 1, '2': 2, '1': 3}
_STREAM = {'img': 'rgb', 'lidar': 'depth'}
_ENCODER = {'convd1': 'depth_encoder.0', 'convd2': 'depth_encoder.1', 'convf1': 'guide_encoder.0',
            'convf2': 'guide_encoder.1', 'conv': 'fuse.0'}
_BN_PART = r'(?P<part>0|bn)\.(?P<leaf>\w+)'

# (their key pattern, our key) in the order of the table above; ``leaf`` is weight, bias, running_mean, ...
KEY_RULES: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(rf'conv_img\.conv\.{_BN_PART}'), _basic2d('backbone.rgb_stem')),
    (re.compile(r'conv_lidar\.conv\.0\.(?P<leaf>weight|bias)'), lambda m: f'backbone.depth_stem.0.{m["leaf"]}'),
    (re.compile(r'layer(?P<n>[1-5])_(?P<s>img|lidar)\.(?P<j>\d+)\.downsample\.(?P<k>[01])\.(?P<leaf>\w+)'),
     lambda m: f'backbone.{_STREAM[m["s"]]}_stages.{int(m["n"]) - 1}.{m["j"]}.shortcut.{m["k"]}.{m["leaf"]}'),
    (re.compile(r'layer(?P<n>[1-5])_(?P<s>img|lidar)\.(?P<j>\d+)\.(?P<name>conv1|bn1|conv2|bn2)\.(?P<leaf>\w+)'),
     lambda m: f'backbone.{_STREAM[m["s"]]}_stages.{int(m["n"]) - 1}.{m["j"]}.{m["name"]}.{m["leaf"]}'),
    (re.compile(rf'guide(?P<n>[1-4])\.conv\.conv\.{_BN_PART}'),
     _basic2d(lambda m: f'backbone.guides.{int(m["n"]) - 1}.fuse')),
    (re.compile(r'layer(?P<n>[1-4])d\.(?P<part>conv|bn)\.(?P<leaf>\w+)'),
     lambda m: f'backbone.decoder.{_DECODER[m["n"]]}.{0 if m["part"] == "conv" else 1}.{m["leaf"]}'),
    (re.compile(r'upproj(?P<i>[0-2])\.(?P<k>\d+)\.(?P<part>conv|bn)\.(?P<leaf>\w+)'),
     lambda m: f'backbone.guidance_heads.{m["i"]}.{m["k"]}.{0 if m["part"] == "conv" else 1}.{m["leaf"]}'),
    (re.compile(rf'conv\.conv\.{_BN_PART}'), _basic2d('backbone.full_resolution_guide')),
    (re.compile(r'weight_offset(?P<i>[0-3])\.(?P<name>convd1|convd2|convf1|convf2|conv)\.conv\.0\.(?P<leaf>weight|bias)'),
     lambda m: f'updates.{m["i"]}.{_ENCODER[m["name"]]}.0.{m["leaf"]}'),
    (re.compile(r'weight_offset(?P<i>[0-3])\.ref\.(?P<name>conv1|bn1|conv2|bn2)\.(?P<leaf>\w+)'),
     lambda m: f'updates.{m["i"]}.fuse.1.{m["name"]}.{m["leaf"]}'),
    (re.compile(r'weight_offset(?P<i>[0-3])\.conv_(?P<head>weight|offset)\.(?P<leaf>weight|bias)'),
     lambda m: f'updates.{m["i"]}.{m["head"]}_head.{m["leaf"]}'),
    (re.compile(r'Post_process\.w'), lambda m: 'aggregation.weight'),
    (re.compile(r'Post_process\.b'), lambda m: 'aggregation.bias'),
]


def our_key(authors_key: str) -> str | None:
    """The name of our tensor for one of the authors' state-dict keys (``None``: not a key of their network)."""
    for pattern, target in KEY_RULES:
        match = pattern.fullmatch(authors_key)
        if match:
            return target(match)
    return None


class CheckpointError(ValueError):
    """A file that is not (or not entirely) an LRRU authors' checkpoint of the requested variant."""


def _state_dict_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint: the dict itself, or one wrapper level ({'net': ...},
    {'state_dict': ...}, {'model': ...}) as training scripts save them."""
    if isinstance(loaded, Mapping):
        for wrapper in ('net', 'state_dict', 'model'):
            inner = loaded.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not loaded or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise CheckpointError(f'{path.name} holds {type(loaded).__name__}, not a state dict of tensors; '
                              f'expected an LRRU authors\' checkpoint ({AUTHORS_URL})')
    return {(key[len('module.'):] if key.startswith('module.') else key): value for key, value in loaded.items()}


def variant_of(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which variant a (prefix-stripped) authors' state dict fits, from the RGB stem's width (2 bc)."""
    stem = state.get('conv_img.conv.0.weight')
    if stem is None or stem.dim() != 4:
        return None
    for name, config in VARIANTS.items():
        if stem.shape[0] == 2 * config.base_channels:
            return name
    return None


def convert_state_dict(state: Mapping[str, torch.Tensor], variant: str,
                       source: str = 'checkpoint') -> dict[str, torch.Tensor]:
    """The authors' (``module.``-stripped) state dict -> our state dict for ``variant``, every key and shape
    checked; any mismatch is a :class:`CheckpointError` naming the first offending key."""
    from .lrru import LRRU

    with torch.device('meta'):
        expected = LRRU(get_config(variant)).state_dict()
    fits = variant_of(state)
    hint = f' (it fits LRRU-{fits})' if fits and fits != variant else ''
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        target = our_key(key)
        if target is None or target not in expected:
            raise CheckpointError(f'{source}: key {key!r} is not part of the LRRU authors\' network; '
                                  f'not an LRRU checkpoint ({AUTHORS_URL}){hint}')
        if tuple(tensor.shape) != tuple(expected[target].shape):
            why = hint or f'; not an LRRU-{variant} checkpoint'
            raise CheckpointError(f'{source}: {key!r} has shape {tuple(tensor.shape)}, LRRU-{variant} expects '
                                  f'{tuple(expected[target].shape)}{why}')
        converted[target] = tensor.detach().to('cpu', expected[target].dtype).contiguous()
    missing = [key for key in expected if key not in converted]
    if missing:
        raise CheckpointError(f'{source}: {len(missing)} tensors of LRRU-{variant} missing, first {missing[0]!r}; '
                              f'a truncated or partial checkpoint{hint}')
    return converted


def read_authors_checkpoint(path: str | Path, variant: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load an authors' ``.pt``/``.pth`` with ``torch.load(weights_only=True)`` (never code from the file) and
    convert it for ``variant``: ``(our state dict, metadata)``. Every failure is a one-line CheckpointError."""
    import pickle
    import zipfile

    path = Path(path)
    get_config(variant)                                     # unknown variant: KeyError with the choices
    if not path.is_file():
        raise CheckpointError(f'checkpoint not found: {path}')
    data = path.read_bytes()
    try:
        import io
        loaded = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        first = (str(error).strip().splitlines() or [''])[0][:160]
        raise CheckpointError(f'{path.name} needs code to load (refused: only tensors are read; {first})') from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        first = (str(error).strip().splitlines() or [''])[0][:160]
        raise CheckpointError(f'{path.name} is not a readable PyTorch checkpoint (truncated or corrupt: '
                              f'{first}); download it again') from error
    state = _state_dict_of(loaded, path)
    converted = convert_state_dict(state, variant, source=path.name)
    metadata = {
        'prefill': AUTHORS_PREFILL,
        'source': {'file': path.name, 'sha256': hashlib.sha256(data).hexdigest(), 'url': AUTHORS_URL},
        'provenance': PROVENANCE,
        'training': {'by': 'LRRU authors', 'data': 'KITTI depth completion'},
    }
    return converted, metadata
