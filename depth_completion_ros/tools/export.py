"""``depth-completion export``: the whole LRRU network (TDU included) to ONNX, with dynamic height/width.

The TDU's deformable sampling is plain ``grid_sample`` (opset >= 16), so no custom op is needed. We use the
TorchScript exporter (``dynamo=False``) with ``dynamic_axes`` (verified to generalise over H/W, ENV.md).
Graph inputs: ``rgb`` (B,3,H,W float 0..255), ``sparse``, ``prefill``, ``anchors`` (B,1,H,W metres);
outputs ``depth_1`` .. ``depth_4`` (the last is the prediction). Prefill stays outside the graph.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

INPUT_NAMES = ['rgb', 'sparse', 'prefill', 'anchors']
OUTPUT_NAMES = ['depth_1', 'depth_2', 'depth_3', 'depth_4']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variant', default='mini', choices=['mini', 'tiny', 'small', 'base'])
    parser.add_argument('--weights', default=None,
                        help='weights path or shipped name; omit for random initialisation (plumbing only)')
    parser.add_argument('--format', default='onnx', choices=['onnx'])
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--height', type=int, default=256, help='height of the example input used for tracing')
    parser.add_argument('--width', type=int, default=1216, help='width of the example input used for tracing')
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--static', action='store_true', help='fix H and W to the traced size')
    parser.add_argument('--no-verify', action='store_true', help='skip the onnxruntime comparison')


def example_inputs(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Plausible inputs: random RGB, ~5 % LiDAR samples, and their prefill/anchors."""
    from depth_completion_ros.core.prefill import prefill

    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(1, 3, height, width, generator=generator) * 255
    depth = 5.0 + 40.0 * torch.rand(1, 1, height, width, generator=generator)
    sparse = torch.where(torch.rand(1, 1, height, width, generator=generator) < 0.05, depth, torch.zeros_like(depth))
    fill, anchors = prefill(sparse)
    return rgb, sparse, fill, anchors


def export_onnx(model: torch.nn.Module, out: str | Path, height: int = 256, width: int = 1216, opset: int = 18,
                dynamic: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {name: {0: 'batch', 2: 'height', 3: 'width'} for name in INPUT_NAMES + OUTPUT_NAMES}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')            # tracer warnings about shape arithmetic are expected here
        torch.onnx.export(model, example_inputs(height, width), str(out), input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_axes=dynamic_axes, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    return out


def verify_onnx(model: torch.nn.Module, path: str | Path, sizes: list[tuple[int, int]]) -> dict[str, float]:
    """Max |onnxruntime - eager| of the final output per size; raises ImportError without onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    result: dict[str, float] = {}
    model = model.eval().cpu()
    for height, width in sizes:
        inputs = example_inputs(height, width, seed=1)
        with torch.inference_mode():
            expected = model(*inputs)[-1].numpy()
        feeds = {name: tensor.numpy() for name, tensor in zip(INPUT_NAMES, inputs, strict=True)}
        got = session.run([OUTPUT_NAMES[-1]], feeds)[0]
        result[f'{height}x{width}'] = float(np.abs(got - expected).max())
    return result


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.model import build_model, load_model

    if args.weights:
        model, _info = load_model(args.weights, variant=args.variant)
    else:
        print('warning: no --weights given, exporting a randomly initialised model', file=sys.stderr)
        model = build_model(args.variant)
    path = export_onnx(model, args.out, args.height, args.width, args.opset, dynamic=not args.static)
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}, '
          f'{"static" if args.static else "dynamic"} H/W)')
    if args.no_verify:
        return 0
    sizes = [(args.height, args.width)]
    if not args.static:
        sizes.append((args.height + 24, args.width - 40) if args.width > 64 else (args.height + 8, args.width + 8))
    try:
        diffs = verify_onnx(model, path, sizes)
    except ImportError:
        print('onnxruntime not installed: skipped verification')
        return 0
    for size, diff in diffs.items():
        print(f'onnxruntime vs PyTorch at {size}: max abs difference {diff:.3g} m')
    return 0
