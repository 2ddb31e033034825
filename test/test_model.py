"""LRRU network: parameter counts, shapes, gradients, determinism, anchor re-imposition, brief training."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from depth_completion_ros.core.prefill import prefill
from depth_completion_ros.model import REFERENCE_PARAMS, VARIANTS, build_model, describe_variants, lrru_loss
from depth_completion_ros.model.loss import iteration_weights


def make_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=generator) * 255
    dense = 5.0 + 20.0 * torch.rand(batch, 1, height, width, generator=generator)
    mask = torch.rand(batch, 1, height, width, generator=generator) < 0.1
    sparse = torch.where(mask, dense, torch.zeros_like(dense))
    fill, anchors = prefill(sparse)
    return rgb, sparse, fill, anchors


def test_parameter_counts_equal_the_authors() -> None:
    described = describe_variants()
    assert set(described) == set(VARIANTS) == {'mini', 'tiny', 'small', 'base'}
    for name, info in described.items():
        assert info['params'] == REFERENCE_PARAMS[name], (name, info)
        bc = info['base_channels']
        assert info['channels'] == [4 * bc, 8 * bc, 16 * bc, 16 * bc, 16 * bc]
    assert [described[n]['base_channels'] for n in ('mini', 'tiny', 'small', 'base')] == [2, 4, 8, 16]


@pytest.mark.parametrize('size', [(37, 61), (228, 304), (32, 48)])
def test_output_shapes_for_any_size(size: tuple[int, int]) -> None:
    model = build_model('mini').eval()
    with torch.inference_mode():
        outputs = model(*make_inputs(1, *size))
    assert len(outputs) == 4
    assert all(out.shape == (1, 1, *size) for out in outputs)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    # Stochastic depth off so no residual branch is dropped in this one training step.
    model = build_model(replace(VARIANTS['tiny'], survival_prob=1.0)).train()
    rgb, sparse, fill, anchors = make_inputs(2, 32, 48)
    outputs = model(rgb, sparse, fill, anchors)
    lrru_loss(outputs, sparse).backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, dead


def test_eval_output_is_deterministic() -> None:
    torch.manual_seed(0)
    model = build_model('tiny').eval()
    inputs = make_inputs(1, 37, 61)
    with torch.inference_mode():
        first = model(*inputs)
        second = model(*inputs)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_measured_pixels_are_reimposed_before_each_update_and_outputs_differ() -> None:
    torch.manual_seed(0)
    model = build_model('mini').eval()
    rgb, sparse, fill, anchors = make_inputs(1, 32, 48)
    seen: list[torch.Tensor] = []
    hooks = [update.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
             for update in model.updates]
    with torch.inference_mode():
        outputs = model(rgb, sparse, fill, anchors)
    for hook in hooks:
        hook.remove()
    assert len(seen) == 4
    measured = anchors > 0
    for depth_in in seen:
        assert torch.equal(depth_in[measured], anchors[measured])
    assert not torch.equal(seen[0], fill)                  # it differs from the prefill where points were cleaned
    for a, b in zip(outputs[:-1], outputs[1:], strict=True):
        assert not torch.allclose(a, b)


def test_loss_weights() -> None:
    assert iteration_weights(4) == pytest.approx([0.512, 0.64, 0.8, 1.0])
    gt = torch.zeros(1, 1, 2, 2)
    gt[0, 0, 0, 0] = 2.0                                     # one valid pixel
    outputs = [torch.full((1, 1, 2, 2), 1.0) for _ in range(4)]   # error 1 there: L1 + L2 = 2
    assert float(lrru_loss(outputs, gt)) == pytest.approx(2.0 * (0.512 + 0.64 + 0.8 + 1.0))
    outputs[0] = torch.full((1, 1, 2, 2), 3.0)               # also error 1, other sign; far pixels ignored
    assert float(lrru_loss(outputs, gt)) == pytest.approx(2.0 * (0.512 + 0.64 + 0.8 + 1.0))


def constructed_scene(batch: int, height: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    """A ground plane receding to the top plus a box in front; RGB coloured by surface; 6% LiDAR samples."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, height).view(1, 1, height, 1)
    cols = torch.linspace(0, 1, width).view(1, 1, 1, width)
    gt = (30.0 - 25.0 * rows).expand(batch, 1, height, width).clone()
    rgb = torch.zeros(batch, 3, height, width)
    rgb[:, 1] = 80 + 100 * rows.expand(batch, 1, height, width)[:, 0]
    for b in range(batch):
        top, left = torch.randint(5, height // 2, (2,), generator=generator).tolist()
        box_h, box_w = height // 3, width // 4
        box_depth = 4.0 + 6.0 * float(torch.rand(1, generator=generator))
        gt[b, 0, top:top + box_h, left:left + box_w] = box_depth + 2.0 * cols[0, 0, 0, left:left + box_w]
        rgb[b, 0, top:top + box_h, left:left + box_w] = 200
    mask = torch.rand(batch, 1, height, width, generator=generator) < 0.06
    sparse = torch.where(mask, gt, torch.zeros_like(gt))
    fill, anchors = prefill(sparse)
    return rgb, sparse, fill, anchors, gt


def test_brief_training_improves_from_first_to_last_output() -> None:
    """Fit one constructed scene for a fixed number of steps (no wall-clock cut-off, so the result does not
    depend on machine load): the recurrence must then improve from the first to the last update, and the
    last output must beat the prefill it started from."""
    torch.manual_seed(0)
    model = build_model('mini').train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    rgb, sparse, fill, anchors, gt = constructed_scene(2, 48, 64, seed=0)
    for _ in range(80):
        loss = lrru_loss(model(rgb, sparse, fill, anchors), gt)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.inference_mode():
        outputs = model(rgb, sparse, fill, anchors)
    errors = [float((out - gt).abs().mean()) for out in outputs]
    prefill_error = float((fill - gt).abs().mean())
    print('errors per output', errors, 'prefill', prefill_error)
    assert all(b <= a + 1e-3 for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0] - 0.01, errors
    assert errors[-1] < 0.8 * prefill_error, (errors, prefill_error)


# ------------------------------------------------------------------ inference fast path (fused eval copy)
def randomise_batch_norm(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine parameters, so folding them actually changes the weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.4 * torch.rand(n, generator=generator) - 0.2)


@pytest.mark.parametrize('variant', ['mini', 'tiny'])
def test_fused_inference_copy_matches_the_eval_model(variant: str) -> None:
    from depth_completion_ros.model.inference import fuse_for_inference
    torch.manual_seed(0)
    model = build_model(replace(VARIANTS[variant], survival_prob=0.8)).eval()     # eval scales residuals
    randomise_batch_norm(model, seed=1)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    channels_last = fuse_for_inference(model).to(memory_format=torch.channels_last)
    for size in [(37, 61), (64, 96)]:
        inputs = make_inputs(1, *size, seed=2)
        with torch.inference_mode():
            expected = model(*inputs)
            for candidate in (fused, channels_last):
                got = candidate(*inputs)
                for a, b in zip(got, expected, strict=True):
                    assert a.shape == b.shape
                    assert float((a - b).abs().max()) < 1e-4          # metres


def test_depth_completer_fused_path_matches_and_follows_state_changes() -> None:
    import numpy as np

    from depth_completion_ros.model.inference import DepthCompleter
    rgb, sparse, _, _ = make_inputs(1, 48, 80, seed=3)
    rgb_np = rgb[0].permute(1, 2, 0).round().to(torch.uint8).numpy()
    sparse_np = sparse[0, 0].numpy()
    torch.manual_seed(0)
    plain = DepthCompleter('mini', weights=None, device='cpu', fuse=False)
    randomise_batch_norm(plain.model, seed=4)
    fast = DepthCompleter('mini', weights=None, device='cpu')
    fast.model.load_state_dict(plain.model.state_dict())
    expected = plain.complete(rgb_np, sparse_np).depth
    got = fast.complete(rgb_np, sparse_np).depth
    assert np.abs(got - expected).max() < 1e-4
    assert fast.network() is fast.network()                       # cached while the weights stay the same
    randomise_batch_norm(plain.model, seed=5)                      # new weights loaded after first use
    fast.model.load_state_dict(plain.model.state_dict())
    assert np.abs(fast.complete(rgb_np, sparse_np).depth - plain.complete(rgb_np, sparse_np).depth).max() < 1e-4


def test_depth_completer_floors_network_depth_at_the_nearest_measurement() -> None:
    """Residual updates are unbounded: where the network's last output is nearer than every measured point
    (here forced negative on the left half), the completer returns the nearest measured depth; elsewhere the
    network's value is untouched."""
    from depth_completion_ros.model import DepthCompleter

    class LeftHalfNegative(torch.nn.Module):
        def forward(self, rgb, sparse, fill, anchors):
            out = fill + 1.0
            out[..., : out.shape[-1] // 2] = -2.0
            return [out] * 4

    completer = DepthCompleter(weights=None, device='cpu')
    completer.network = lambda: LeftHalfNegative()       # the module complete() runs
    _, sparse, _, anchors, _ = constructed_scene(1, 32, 48, seed=3)
    nearest = float(anchors[anchors > 0.1].min())
    rgb = torch.zeros(32, 48, 3, dtype=torch.uint8).numpy()
    result = completer.complete(rgb, sparse[0, 0].numpy())
    assert nearest > 1.0
    assert (result.depth[:, :24] == nearest).all()
    assert torch.allclose(torch.from_numpy(result.depth[:, 24:]), torch.from_numpy(result.prefill[:, 24:]) + 1.0)
