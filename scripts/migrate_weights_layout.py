"""One-off: carry weights of the package's first LRRU layout (before it became the authors' network) over to
the current one, as the starting point of fine-tuning (docs/MODEL_CARD.md, "Retrained for the authors' layout").

Tensors whose module exists in both layouts are copied. The update encoders had conv + BatchNorm where the
authors have conv + bias: the BatchNorm is folded into the conv (exact for inference). What the authors'
network does not have is dropped: the 3x3 conv after the 1/8, 1/4 and 1/2 guidance upsamplings (and the depth
stem added there). The result is NOT equivalent to the old network (guidance of steps 1-3 and the refinement
block's last ReLU changed), which is why it is only a starting point for training.

    python scripts/migrate_weights_layout.py OLD.safetensors NEW.safetensors
"""
from __future__ import annotations

import re
import sys

import torch
from safetensors.torch import load_file
from torch import nn

from depth_completion_ros.model import build_model, save_weights
from depth_completion_ros.model.inference import _fold_batch_norm
from depth_completion_ros.model.weights import read_metadata

FOLDED = re.compile(r'updates\.(\d)\.(depth_encoder\.[01]|guide_encoder\.[01]|fuse\.0)\.0\.weight')


def folded_conv(weight: torch.Tensor, old: dict[str, torch.Tensor], bn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a bias-free 3x3 conv with the BatchNorm ``bn`` folded in, by the inference path's own
    folding (``model.inference._fold_batch_norm``)."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=False)
    norm = nn.BatchNorm2d(weight.shape[0])
    with torch.no_grad():
        conv.weight.copy_(weight)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            getattr(norm, name).copy_(old[f'{bn}.{name}'])
    fused = _fold_batch_norm(conv, norm)
    return fused.weight.detach(), fused.bias.detach()


def migrate(old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    new: dict[str, torch.Tensor] = {}
    for key, tensor in old.items():
        upsample = re.fullmatch(r'backbone\.guidance_heads\.([0-2])\.upsample\.(.*)', key)
        if upsample:
            new[f'backbone.guidance_heads.{upsample[1]}.{upsample[2]}'] = tensor
        elif key.startswith('backbone.guidance_heads.3.refine.'):
            new[key.replace('guidance_heads.3.refine', 'full_resolution_guide')] = tensor
        elif key.startswith('backbone.guidance_heads.'):
            continue                                          # the dropped 3x3 convs of steps 1-3
        elif FOLDED.fullmatch(key):
            prefix = key[:-len('.0.weight')]
            new[key], new[f'{prefix}.0.bias'] = folded_conv(tensor, old, f'{prefix}.1')
        elif re.search(r'updates\.\d\.(depth_encoder\.[01]|guide_encoder\.[01]|fuse\.0)\.1\.', key):
            continue                                          # folded above
        else:
            new[key] = tensor
    return new


def main(source: str, target: str) -> None:
    info = read_metadata(source)
    model = build_model(str(info['variant']))
    model.load_state_dict(migrate(load_file(source)))        # strict: every tensor of the new layout present
    training = dict(info.get('training', {}))
    training['migrated_from'] = {'file': source, 'note': __doc__.split('\n\n')[1].replace('\n', ' ')}
    save_weights(model, target, {'training': training}, prefill=str(info['prefill']))
    print(f'{source} -> {target}')


if __name__ == '__main__':
    main(*sys.argv[1:3])
