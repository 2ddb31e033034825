"""``depth-completion weights import|list``: bring the LRRU authors' trained checkpoints in, list what is there.

The authors publish trained checkpoints of all four variants (links in the README of their repository); this
package ships none of them. ``import`` reads one with ``torch.load(weights_only=True)`` (tensors only, never
code), checks every key and shape against the variant, and writes a safetensors file whose metadata records
the variant, their prefill (``lrru_authors``), the source file's name and sha256 and where it came from. By
default it goes to the user's weights folder, where every command then finds it by name
(``lrru_<variant>_authors``).
"""
from __future__ import annotations

import argparse

from depth_completion_ros.tools.common import CliError

VARIANT_CHOICES = ('mini', 'tiny', 'small', 'base')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        'Import the LRRU authors\' trained checkpoints (published in their repository, not shipped here) and list '
        'the weights every command can name. Example: `depth-completion weights import LRRU_Mini.pt --variant '
        'mini`, then `depth-completion complete --weights lrru_mini_authors --rgb RGB --sparse SPARSE --out '
        'out.npy`.')
    actions = parser.add_subparsers(dest='action', metavar='<action>', required=True)
    importer = actions.add_parser(
        'import', help='convert an LRRU authors\' checkpoint (.pt/.pth) into a weights file',
        description='Convert one of the LRRU authors\' trained checkpoints (a PyTorch state dict of their '
                    'model_dcnv2.py layout, with or without the DataParallel "module." prefix) into this '
                    'package\'s safetensors weights. Only tensors are read (torch.load weights_only=True). The '
                    'checkpoints are linked from the README of https://github.com/YufeiWang777/LRRU (download them '
                    'yourself: this package ships none); pass the variant its link names (Mini, Tiny, Small, '
                    'Base).')
    importer.add_argument('checkpoint', help='the downloaded checkpoint file')
    importer.add_argument('--variant', required=True, choices=VARIANT_CHOICES,
                          help='which LRRU variant the checkpoint is (Mini, Tiny, Small or Base)')
    importer.add_argument('--out', default=None,
                          help='output .safetensors file (default: lrru_<variant>_authors.safetensors in the '
                               'user weights folder, $XDG_DATA_HOME/depth_completion_ros/weights, found by name)')
    actions.add_parser('list', help='list shipped and imported weights')
    parser.set_defaults(action=None)


def _print_table(title: str, entries: list[dict]) -> None:
    print(title)
    if not entries:
        print('  (none)')
    for entry in entries:
        print(f"  {entry['name']:24s} variant {str(entry.get('variant')):6s} prefill {str(entry.get('prefill')):13s}"
              f" {entry.get('size_bytes', 0) / 1e6:6.2f} MB  {entry['path']}")


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.model.authors import PROVENANCE, CheckpointError
    from depth_completion_ros.model.weights import (
        WeightsError,
        import_authors_checkpoint,
        list_imported_weights,
        list_shipped_weights,
        user_weights_dir,
    )

    if args.action == 'list':
        _print_table('shipped (trained by this project):', list_shipped_weights())
        _print_table(f'imported ({user_weights_dir()}):', list_imported_weights())
        return 0
    try:
        path = import_authors_checkpoint(args.checkpoint, args.variant, args.out)
    except (CheckpointError, WeightsError) as error:
        raise CliError(str(error)) from error
    name = path.stem if path.parent == user_weights_dir() else str(path)
    print(f'imported LRRU-{args.variant} ({PROVENANCE}) -> {path}')
    print(f'use it with --weights {name} (prefill: lrru_authors, stored in the file)')
    return 0
