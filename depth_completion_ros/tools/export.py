"""``depth-completion export``: the whole LRRU network (TDU included) to ONNX, with dynamic height/width.

The TDU's deformable sampling is plain ``grid_sample`` (opset >= 16), so no custom op is needed. We use the
TorchScript exporter (``dynamo=False``) with ``dynamic_axes`` (verified to generalise over H/W, ENV.md).
Graph inputs: ``rgb`` (B,3,H,W float 0..255), ``sparse``, ``prefill``, ``anchors`` (B,1,H,W metres);
outputs ``depth_1`` .. ``depth_4`` (the last is the prediction). Prefill stays outside the graph: feed it
from ``core.prefill.prefill`` (docs/ONNX.md shows onnxruntime doing so). The file's metadata
(``metadata_props``) names the variant, the weights, the prefill method, every input's meaning and the units.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from depth_completion_ros.tools.common import CliError, print_written, progress

INPUT_NAMES = ['rgb', 'sparse', 'prefill', 'anchors']
OUTPUT_NAMES = ['depth_1', 'depth_2', 'depth_3', 'depth_4']
# What a consumer of the .onnx file needs to feed it (stored in the file, see add_metadata).
INPUT_MEANINGS = {
    'rgb': 'camera image, B x 3 x H x W float32, RGB order, 0..255 (the model normalises inside)',
    'sparse': 'measured depth projected into the camera, B x 1 x H x W float32 metres, 0 = no measurement',
    'prefill': 'dense non-learned prefill of sparse with the method the weights were trained on (metadata '
               "prefill_method): core.prefill.prefill(sparse, method)[0], B x 1 x H x W float32 metres",
    'anchors': 'sparse with LRRU outlier removal (core.prefill.prefill(...)[1]), re-imposed before every update, '
               'B x 1 x H x W float32 metres, 0 = none',
}
OUTPUT_MEANINGS = {name: f'dense depth after update {i + 1} of 4 (long to short range), B x 1 x H x W float32 '
                         f'metres{"; the prediction" if i == 3 else ""}' for i, name in enumerate(OUTPUT_NAMES)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variant', default=None, choices=['mini', 'tiny', 'small', 'base'],
                        help='LRRU variant: checked against --weights when given (otherwise the file\'s); '
                             'with --random the variant to build (otherwise mini)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--weights', default=None, help='weights: a .safetensors path or a shipped name (lrru_mini)')
    source.add_argument('--random', action='store_true',
                        help='export a randomly initialised network (plumbing tests only: its depth is noise)')
    parser.add_argument('--format', default='onnx', choices=['onnx'], help='output format')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--height', type=int, default=256, help='height of the example input used for tracing')
    parser.add_argument('--width', type=int, default=1216, help='width of the example input used for tracing')
    parser.add_argument('--opset', type=int, default=18,
                        help='ONNX opset: 16-19 (grid_sample needs >= 16; TensorRT reads the bilinear GridSample '
                             'of opset >= 20 as nearest, NVIDIA/TensorRT#4646)')
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


def add_metadata(path: str | Path, info: dict[str, str]) -> dict[str, str]:
    """Write ``info`` plus the input/output meanings into the file's ``metadata_props`` and each graph input's
    and output's ``doc_string`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``)."""
    import onnx

    model = onnx.load(str(path))
    props = {**info, 'inputs': json.dumps(INPUT_MEANINGS), 'outputs': json.dumps(OUTPUT_MEANINGS),
             'units': 'depth in metres (float32), 0 = no measurement on inputs; rgb 0..255',
             'prefill': 'depth_completion_ros.core.prefill.prefill(sparse, method=<prefill_method>) -> '
                        '(prefill, anchors with LRRU outlier removal); not part of the graph',
             'postprocess': 'the node clamps depth_4 from below at the nearest anchor depth and to max_range'}
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    for value_info in model.graph.input:
        value_info.doc_string = INPUT_MEANINGS.get(value_info.name, '')
    for value_info in model.graph.output:
        value_info.doc_string = OUTPUT_MEANINGS.get(value_info.name, '')
    model.doc_string = 'LRRU depth completion (depth_completion_ros); metadata_props describe the inputs'
    onnx.save(model, str(path))
    return props


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
    from depth_completion_ros.core.prefill import DEFAULT_PREFILL
    from depth_completion_ros.model import build_model, load_model

    out = Path(args.out).expanduser()
    if out.is_dir() or (out.exists() and out.suffix != '.onnx'):  # never write over a folder or a file of the user's
        raise CliError(f'--out {args.out}: {"is a folder" if out.is_dir() else "exists and is not an .onnx file"}; '
                       'name the model file to write, e.g. --out lrru_mini.onnx')
    if args.opset < 16:
        raise CliError(f'--opset {args.opset} has no grid_sample (the TDU needs it): use --opset 16 or higher')
    if args.opset >= 20:
        print(f'warning: --opset {args.opset}: TensorRT parses the renamed GridSample mode of opset >= 20 as '
              f'nearest (NVIDIA/TensorRT#4646); onnxruntime is fine. For TensorRT use --opset 16-19 (default 18)',
              file=sys.stderr)
    try:
        import onnx  # noqa: F401  (the exporter and the metadata need it)
    except ImportError as exc:
        raise CliError('the onnx package is not installed: pip install onnx onnxscript') from exc
    if args.random:
        model, weights_name, prefill_method = build_model(args.variant or 'mini'), 'random (untrained)', DEFAULT_PREFILL
    else:
        model, info = load_model(args.weights, variant=args.variant)
        weights_name = str(info.get('name') or args.weights)
        prefill_method = str(info.get('prefill', DEFAULT_PREFILL))
    steps = progress(total=3, desc='export', unit='step')
    steps.set_postfix_str('tracing')
    path = export_onnx(model, args.out, args.height, args.width, args.opset, dynamic=not args.static)
    steps.update()
    add_metadata(path, {'variant': model.config.name, 'weights': weights_name, 'prefill_method': prefill_method,
                        'opset': str(args.opset),
                        'dynamic_hw': str(not args.static).lower(), 'traced_size': f'{args.height}x{args.width}',
                        'producer': 'depth_completion_ros export'})
    steps.update()
    diffs: dict[str, float] = {}
    if not args.no_verify:
        steps.set_postfix_str('onnxruntime check')
        sizes = [(args.height, args.width)]
        if not args.static:
            sizes.append((args.height + 24, args.width - 40) if args.width > 64 else (args.height + 8, args.width + 8))
        try:
            diffs = verify_onnx(model, path, sizes)
        except ImportError:
            steps.write('onnxruntime not installed: skipped verification')
    steps.update()
    steps.close()
    print(f'LRRU-{model.config.name} ({weights_name}) -> {path}: opset {args.opset}, '
          f'{"static" if args.static else "dynamic"} H/W, metadata in metadata_props (docs/ONNX.md)')
    for size, diff in diffs.items():
        print(f'onnxruntime vs PyTorch at {size}: max abs difference {diff:.3g} m')
    print_written([('ONNX model', path)])
    return 0
