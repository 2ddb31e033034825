"""``depth-completion info [--json]``: package and torch versions, devices, model variants, shipped and imported
weights (apart: the imported ones are the user's, e.g. the LRRU authors' checkpoints)."""
from __future__ import annotations

import argparse
import json


def collect() -> dict:
    import torch

    import depth_completion_ros

    info: dict = {
        'package': 'depth_completion_ros',
        'version': depth_completion_ros.__version__,
        'torch': torch.__version__,
        'devices': {
            'cpu': True,
            'cuda': torch.cuda.is_available(),
            'cuda_devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        },
    }
    try:
        from depth_completion_ros.model import describe_variants, list_imported_weights, list_shipped_weights
    except ImportError:  # the model package is not built yet
        return info
    info['variants'] = describe_variants()
    info['weights'] = list_shipped_weights()
    info['imported_weights'] = list_imported_weights()
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--json', action='store_true', help='print one JSON object')


def main(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"depth_completion_ros {info['version']} | torch {info['torch']} | "
          f"cuda: {info['devices']['cuda']} {info['devices']['cuda_devices']}")
    for name, v in info.get('variants', {}).items():
        print(f"  variant {name:6s} {v['params']:>11,d} parameters  channels {v.get('channels')}")
    for title, key in (('shipped weights', 'weights'), ('imported weights', 'imported_weights')):
        print(f'  {title}:' + ('' if info.get(key) else ' none'))
        for w in info.get(key, []):
            print(f"    {w['name']}: variant {w.get('variant')}, prefill {w.get('prefill')} "
                  f"({w.get('size_bytes', 0) / 1e6:.2f} MB) {w['path']}")
    return 0
