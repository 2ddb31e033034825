"""``DepthCompleter``: numpy RGB + sparse metres in, dense metres out (prefill, device, precision, timings)."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.prefill import prefill as run_prefill
from .lrru import LRRU, build_model
from .weights import load_model

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


@dataclass
class Completion:
    depth: np.ndarray                                   # HxW float32 metres (network output, or prefill)
    prefill: np.ndarray                                 # HxW float32 metres
    timings_ms: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    resolved = torch.device(device)
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('device cuda requested but torch.cuda.is_available() is False')
    return resolved


class DepthCompleter:
    """Runs prefill + LRRU on one frame.

    ``weights``: a shipped name (``'lrru_mini'``; the default follows ``variant``, e.g. ``lrru_tiny``), a path,
    or ``None`` for random initialisation (tests only).
    ``precision``: fp32 | fp16 | bf16 (autocast; the TDU aggregation itself stays fp32). ``channels_last`` is
    applied on CUDA only. ``prefill_only`` skips the network (returns the ip_basic prefill).
    """

    def __init__(self, variant: str = 'mini', weights: str | Path | None = 'lrru_mini', device: str = 'auto',
                 precision: str = 'fp32', prefill_only: bool = False, channels_last: bool = False,
                 prefill_method: str = 'fast') -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
        self.device = resolve_device(device)
        self.precision = precision
        self.prefill_only = prefill_only
        self.prefill_method = prefill_method
        self.metadata: dict[str, Any] = {}
        self.model: LRRU | None = None
        if not prefill_only:
            if weights == 'lrru_mini' and variant != 'mini':
                weights = f'lrru_{variant}'       # the default name follows the requested variant
            if weights is None:
                model = build_model(variant).eval()
            else:
                model, self.metadata = load_model(weights, variant=variant)
            model = model.to(self.device)
            self.channels_last = channels_last and self.device.type == 'cuda'
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
            self.model = model.eval()
        else:
            self.channels_last = False
        self.variant = variant

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == 'fp32':
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def complete(self, rgb: np.ndarray, sparse: np.ndarray) -> Completion:
        """``rgb`` HxWx3 uint8 RGB, ``sparse`` HxW float32 metres (0 = none) -> :class:`Completion`."""
        if sparse.ndim != 2:
            raise ValueError(f'sparse depth must be HxW, got shape {sparse.shape}')
        if not self.prefill_only and (rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != sparse.shape):
            raise ValueError(f'rgb must be HxWx3 matching sparse {sparse.shape}, got {rgb.shape}')
        timings: dict[str, float] = {}
        start = time.perf_counter()
        sparse_t = torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.float32)).to(self.device)[None, None]
        sparse_t = torch.nan_to_num(sparse_t, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)
        dense, anchors = run_prefill(sparse_t, method=self.prefill_method)
        self._sync()
        timings['prefill'] = (time.perf_counter() - start) * 1e3
        prefill_np = dense[0, 0].float().cpu().numpy()
        if self.prefill_only or self.model is None:
            timings['network'] = 0.0
            timings['total'] = timings['prefill']
            return Completion(depth=prefill_np.copy(), prefill=prefill_np, timings_ms=timings)

        start = time.perf_counter()
        rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None].float()
        if self.channels_last:
            rgb_t = rgb_t.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            outputs = self.model(rgb_t, sparse_t, dense, anchors)
        depth = outputs[-1][0, 0].float()
        self._sync()
        timings['network'] = (time.perf_counter() - start) * 1e3
        timings['total'] = timings['prefill'] + timings['network']
        return Completion(depth=depth.cpu().numpy(), prefill=prefill_np, timings_ms=timings)
