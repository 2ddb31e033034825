"""``DepthCompleter``: numpy RGB + sparse metres in, dense metres out (prefill, device, precision, timings)."""
from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.band import BAND_MARGIN_PX, network_band
from ..core.prefill import DEFAULT_PREFILL, VALID_THRESHOLD, check_prefill_method
from ..core.prefill import prefill as run_prefill
from .blocks import BasicBlock
from .lrru import LRRU, build_model
from .weights import load_model

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
BAND_MODES = ('auto', 'off')


@dataclass
class Completion:
    depth: np.ndarray                                   # HxW float32 metres (network output, or prefill)
    prefill: np.ndarray                                 # HxW float32 metres
    timings_ms: dict[str, float] = field(default_factory=dict)
    band: tuple[int, int] | None = None                 # rows [start, stop) the network ran on (None: no network)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    resolved = torch.device(device)
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('device cuda requested but torch.cuda.is_available() is False')
    return resolved


def _fold_batch_norm(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d, scale: float = 1.0) -> nn.Module:
    """A copy of ``conv`` (with bias) computing ``scale * bn(conv(x))`` with ``bn``'s running statistics."""
    factor = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        factor = factor * bn.weight.double()
    shift = -bn.running_mean.double() * factor
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + conv.bias.double() * factor
    fused = copy.deepcopy(conv)
    weight = conv.weight.double()
    if isinstance(conv, nn.ConvTranspose2d):                  # weight: in, out/groups, kh, kw
        if conv.groups != 1:
            raise ValueError('grouped transposed convolutions are not folded')
        weight = weight * factor.view(1, -1, 1, 1)
    else:                                                     # weight: out, in/groups, kh, kw
        weight = weight * factor.view(-1, 1, 1, 1)
    fused.weight = nn.Parameter((weight * scale).to(conv.weight.dtype), requires_grad=False)
    fused.bias = nn.Parameter((shift * scale).to(conv.weight.dtype), requires_grad=False)
    return fused


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-only copy of ``model`` with every BatchNorm folded into the convolution before it.

    Also folds the eval-time stochastic-depth factor of :class:`BasicBlock` (``survival_prob * residual``) into
    its second convolution. The trained module and the weights format are untouched; outputs agree with the
    unfused eval model up to float rounding (``test/test_model.py``).
    """
    fused = copy.deepcopy(model).eval()
    for module in list(fused.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (name, child), (next_name, following) in zip(children[:-1], children[1:], strict=True):
                if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(following, nn.BatchNorm2d):
                    setattr(module, name, _fold_batch_norm(child, following))
                    setattr(module, next_name, nn.Identity())
        elif isinstance(module, BasicBlock):
            module.conv1 = _fold_batch_norm(module.conv1, module.bn1)
            module.conv2 = _fold_batch_norm(module.conv2, module.bn2, scale=module.survival_prob)
            module.bn1, module.bn2 = nn.Identity(), nn.Identity()
            module.survival_prob = 1.0
    for module in fused.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f'BatchNorm left unfolded in {type(model).__name__}: {module}')
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    return fused


def resolve_prefill_method(requested: str, metadata: dict[str, Any]) -> str:
    """``'auto'``: the prefill the weights were trained with (``metadata['prefill']``; files without the key
    predate the choice and were trained with ip_basic). An explicit method must match the weights, since a
    network only corrects the prefill it learned on; without weights (prefill only / untrained) it is free."""
    stored = metadata.get('prefill') if metadata else None
    if requested == 'auto':
        return check_prefill_method(str(stored or DEFAULT_PREFILL))
    check_prefill_method(requested)
    if stored is not None and requested != stored:
        raise ValueError(f'these weights were trained with the {stored!r} prefill; prefill {requested!r} was '
                         f'requested (use auto, or weights trained with {requested!r})')
    return requested


class DepthCompleter:
    """Runs prefill + LRRU on one frame.

    ``weights``: a shipped name (``'lrru_mini'``; the default follows ``variant``, e.g. ``lrru_tiny``), a path,
    or ``None`` for random initialisation (tests only).
    ``precision``: fp32 | fp16 | bf16 (autocast; the TDU aggregation itself stays fp32). ``channels_last`` is
    applied on CUDA only. ``prefill_only`` skips the network (returns the prefill).
    ``prefill_method``: ``auto`` (default) = the prefill stored in the weights' metadata (ip_basic for files
    without it and without weights), or one of ``core.prefill.PREFILL_METHODS`` (must match the weights).
    ``fuse`` (default): run an eval-only copy with BatchNorm folded into the convolutions
    (:func:`fuse_for_inference`), in channels_last on CPU (faster there with oneDNN); ``self.model`` stays the
    trained module (its ``state_dict`` format is unchanged) and the copy is rebuilt if its tensors change.
    Outputs agree with the unfused model up to float rounding.
    ``compile_model``: run the network through ``torch.compile`` (for long-running nodes: the first frame of
    each size waits for the compilation, ~1-2 min on CPU); if compiling fails, a warning and eager from then on.
    ``band``: ``off`` (default) runs the network on the whole frame; ``auto`` only on the rows
    :func:`core.band.network_band` returns (the measured rows, what the caller's validity keeps around them, plus
    ``band_margin_px`` of context); the rows outside are 0 (unknown) in ``Completion.depth``. Inside the kept
    rows the output equals the full-frame run within the tolerance test/test_band.py states, not bit for bit.
    """

    def __init__(self, variant: str | None = 'mini', weights: str | Path | None = 'lrru_mini', device: str = 'auto',
                 precision: str = 'fp32', prefill_only: bool = False, channels_last: bool = False,
                 prefill_method: str = 'auto', fuse: bool = True, compile_model: bool = False,
                 band: str = 'off', band_margin_px: int = BAND_MARGIN_PX) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
        if band not in BAND_MODES:
            raise ValueError(f'band must be one of {", ".join(BAND_MODES)}, got {band!r}')
        self.band = band
        self.band_margin_px = int(band_margin_px)
        self.device = resolve_device(device)
        self.precision = precision
        self.prefill_only = prefill_only
        self.metadata: dict[str, Any] = {}
        self.model: LRRU | None = None
        self.fuse = fuse
        self._fused: nn.Module | None = None
        self._fused_key: tuple | None = None
        self.compile_model = compile_model
        self._compiled: tuple[nn.Module, Callable] | None = None       # (source module, compiled callable)
        if not prefill_only:
            if weights == 'lrru_mini' and variant not in ('mini', None):
                weights = f'lrru_{variant}'       # the default name follows the requested variant
            if weights is None:
                model = build_model(variant or 'mini').eval()
            else:                                 # variant None: whatever the file holds
                model, self.metadata = load_model(weights, variant=variant)
            variant = model.config.name
            model = model.to(self.device)
            self.channels_last = channels_last and self.device.type == 'cuda'
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
            self.model = model.eval()
        else:
            self.channels_last = False
        self.variant = variant
        self.prefill_method = resolve_prefill_method(prefill_method, self.metadata)

    def network(self) -> nn.Module:
        """The module that ``complete`` runs: the fused copy (rebuilt when ``self.model``'s tensors changed,
        e.g. after ``load_state_dict``) or, with ``fuse=False``, ``self.model`` itself."""
        if self.model is None:
            raise RuntimeError('prefill_only completer has no network')
        if not self.fuse:
            return self.model
        tensors = [*self.model.parameters(), *self.model.buffers()]
        key = tuple((id(t), t.data_ptr(), t._version) for t in tensors)
        if self._fused is None or key != self._fused_key:
            with torch.inference_mode(False), torch.no_grad():
                fused = fuse_for_inference(self.model)
                if self.channels_last or self.device.type == 'cpu':
                    fused = fused.to(memory_format=torch.channels_last)
            self._fused, self._fused_key = fused, key
        return self._fused

    def _run_network(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        network = self.network()
        if not self.compile_model:
            return network(*inputs)
        if self._compiled is None or self._compiled[0] is not network:
            self._compiled = (network, torch.compile(network, dynamic=False))
        try:
            return self._compiled[1](*inputs)
        except Exception as exc:  # compilation happens (and fails) at the first call: a C++ compiler missing, ...
            first = (str(exc).strip().splitlines() or [''])[0][:200]
            warnings.warn(f'torch.compile failed ({type(exc).__name__}: {first}); running the network eagerly',
                          RuntimeWarning, stacklevel=2)
            self.compile_model, self._compiled = False, None
            return network(*inputs)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == 'fp32':
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def complete(self, rgb: np.ndarray, sparse: np.ndarray, raw: bool = False, band: str | None = None,
                 rows_above: int = 0, rows_below: int | None = None) -> Completion:
        """``rgb`` HxWx3 uint8 RGB, ``sparse`` HxW float32 metres (0 = none) -> :class:`Completion`.

        ``raw``: the network's last output as it is, without the floor at the nearest measurement below.
        ``band``: overrides the constructor's ``band`` for this frame (None: keep it). ``rows_above`` /
        ``rows_below``: the rows the caller's validity keeps above the highest / below the lowest measurement
        (:func:`core.band.network_band`); the band must contain them, since outside it the output is 0."""
        return self._complete_same_size([(rgb, sparse)], raw, band, rows_above, rows_below)[0]

    def complete_batch(self, frames: list[tuple[np.ndarray, np.ndarray]], raw: bool = False,
                       band: str | None = None, rows_above: int = 0,
                       rows_below: int | None = None) -> list[Completion]:
        """Several frames (e.g. the cameras of one scan) -> one :class:`Completion` each, as :meth:`complete`
        gives them. Frames of one size go through the network as one batch (one forward pass: what pays on a
        GPU); frames of different sizes, or a prefill-only completer, run in turn. With ``band='auto'`` the batch
        runs on the union of the frames' bands, so each frame's kept rows are inside it."""
        if len(frames) < 2 or self.prefill_only or self.model is None or len({s.shape for _, s in frames}) > 1:
            return [self.complete(rgb, sparse, raw, band, rows_above, rows_below) for rgb, sparse in frames]
        return self._complete_same_size(frames, raw, band, rows_above, rows_below)

    @torch.inference_mode()
    def _complete_same_size(self, frames: list[tuple[np.ndarray, np.ndarray]], raw: bool, band: str | None,
                            rows_above: int, rows_below: int | None) -> list[Completion]:
        """:meth:`complete` of one frame, or of a batch of frames of one size in one forward pass (times per frame;
        a batch's timings also carry ``batch``: how many frames shared the pass)."""
        for rgb, sparse in frames:
            if sparse.ndim != 2:
                raise ValueError(f'sparse depth must be HxW, got shape {sparse.shape}')
            if not self.prefill_only and (rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != sparse.shape):
                raise ValueError(f'rgb must be HxWx3 matching sparse {sparse.shape}, got {rgb.shape}')
        band = self.band if band is None else band
        if band not in BAND_MODES:
            raise ValueError(f'band must be one of {", ".join(BAND_MODES)}, got {band!r}')
        count, height = len(frames), frames[0][1].shape[0]
        start = time.perf_counter()
        sparse_t = torch.from_numpy(np.stack([np.asarray(s, np.float32) for _, s in frames])).to(self.device)
        sparse_t = torch.nan_to_num(sparse_t[:, None], nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)  # B,1,H,W
        dense, anchors = run_prefill(sparse_t, method=self.prefill_method)
        self._sync()
        prefill_ms = (time.perf_counter() - start) * 1e3 / count
        prefill_np = dense[:, 0].float().cpu().numpy()
        if self.prefill_only or self.model is None:
            timings = {'prefill': prefill_ms, 'network': 0.0, 'total': prefill_ms}
            return [Completion(depth=prefill_np[i].copy(), prefill=prefill_np[i], timings_ms=dict(timings))
                    for i in range(count)]

        start = time.perf_counter()
        # The prefill ran on the whole frame (cheap, and validity/previews use all of it): cropping it keeps the
        # band's prefill equal to the full frame's, where a prefill of the band alone would differ at its edges.
        # A batch runs on the union of its frames' bands.
        if band == 'auto':
            bands = [network_band(s[0].cpu().numpy(), rows_above, rows_below, self.band_margin_px) for s in sparse_t]
            rows = (min(b[0] for b in bands), max(b[1] for b in bands))
        else:
            rows = (0, height)
        crop = slice(*rows)
        rgb_t = torch.from_numpy(np.stack([np.ascontiguousarray(rgb[crop]) for rgb, _ in frames])).to(self.device)
        rgb_t = rgb_t.permute(0, 3, 1, 2).float()                                                     # B,3,h,W
        if self.channels_last:
            rgb_t = rgb_t.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            outputs = self._run_network(rgb_t, sparse_t[..., crop, :], dense[..., crop, :], anchors[..., crop, :])
        depth = outputs[-1][:, 0].float()                                                           # B,h,W
        if not raw:
            # The residual updates are unbounded and can overshoot to ~0 or negative depth far from any measurement
            # (seen on NYU-density input). Nothing in the frame supports a surface nearer than the nearest measured
            # point, so that is the floor (each frame its own): it keeps zero/negative depths (and iRMSE blow-ups)
            # out of the output.
            floors = torch.stack([a[a > VALID_THRESHOLD].min() if bool((a > VALID_THRESHOLD).any())
                                  else a.new_tensor(VALID_THRESHOLD) for a in anchors[:, 0]])
            depth = torch.maximum(depth, floors.view(-1, 1, 1))
        if rows != (0, height):       # outside the band: unknown, as validity makes those rows anyway
            depth = torch.nn.functional.pad(depth, (0, 0, rows[0], height - rows[1]))
        self._sync()
        network_ms = (time.perf_counter() - start) * 1e3 / count
        depth_np = depth.cpu().numpy()
        timings = {'prefill': prefill_ms, 'network': network_ms, 'total': prefill_ms + network_ms}
        if count > 1:
            timings['batch'] = count
        return [Completion(depth=depth_np[i], prefill=prefill_np[i], timings_ms=dict(timings), band=rows)
                for i in range(count)]
