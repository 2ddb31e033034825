"""safetensors round trip, metadata, wrong-variant/corrupt/missing errors, DepthCompleter paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_completion_ros.model import (
    DepthCompleter,
    WeightsError,
    build_model,
    list_shipped_weights,
    load_model,
    save_weights,
)
from depth_completion_ros.model.weights import read_metadata


def _inputs(height: int = 20, width: int = 28) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, height, width, generator=generator) * 255
    sparse = torch.zeros(1, 1, height, width)
    sparse[..., ::3, ::4] = 5.0 + torch.rand(1, 1, (height + 2) // 3, (width + 3) // 4, generator=generator)
    return rgb, sparse, torch.full_like(sparse, 5.5)


def test_round_trip_preserves_outputs_and_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model('mini').eval()
    path = save_weights(model, tmp_path / 'm.safetensors', {'training': {'steps': 3}, 'note': 'test'})
    loaded, info = load_model(path, variant='mini')
    assert info['variant'] == 'mini' and info['training'] == {'steps': 3} and info['note'] == 'test'
    assert 'package_version' in info and info['config']['base_channels'] == 2
    assert not loaded.training
    with torch.inference_mode():
        a = model(*_inputs())[-1]
        b = loaded(*_inputs())[-1]
    assert torch.equal(a, b)
    assert read_metadata(path)['variant'] == 'mini'


def test_wrong_variant_is_a_clear_error(tmp_path: Path) -> None:
    path = save_weights(build_model('mini'), tmp_path / 'm.safetensors')
    with pytest.raises(WeightsError, match='LRRU-mini weights.*tiny'):
        load_model(path, variant='tiny')


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    path = save_weights(build_model('mini'), tmp_path / 'm.safetensors')
    data = path.read_bytes()
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError):
        load_model(truncated)
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(b'\x00\x01not a safetensors file' * 10)
    with pytest.raises(WeightsError):
        load_model(garbage)
    with pytest.raises(WeightsError, match='not found'):
        load_model(tmp_path / 'nope.safetensors')
    with pytest.raises(WeightsError, match='not found'):
        load_model('no_such_shipped_name')


def test_list_shipped_weights_shape() -> None:
    shipped = {entry['name']: entry for entry in list_shipped_weights()}
    assert {'lrru_mini', 'lrru_mini_rgbd'} <= set(shipped)
    for entry in shipped.values():
        assert set(entry) == {'name', 'path', 'variant', 'prefill', 'size_bytes'}
    assert shipped['lrru_mini']['prefill'] == 'ipbasic' and shipped['lrru_mini_rgbd']['prefill'] == 'linear'


def test_depth_completer_fp32_bf16_and_prefill_only() -> None:
    torch.manual_seed(0)
    rgb = np.random.default_rng(0).integers(0, 255, (21, 30, 3), dtype=np.uint8)
    sparse = np.zeros((21, 30), np.float32)
    sparse[::3, ::4] = 8.0
    fp32 = DepthCompleter('mini', weights=None, device='cpu').complete(rgb, sparse)
    assert fp32.depth.shape == (21, 30) and fp32.depth.dtype == np.float32
    assert {'prefill', 'network'} <= set(fp32.timings_ms)
    np.testing.assert_allclose(fp32.prefill, 8.0, atol=1e-4)
    completer = DepthCompleter('mini', weights=None, device='cpu', precision='bf16')
    completer.model.load_state_dict(DepthCompleter('mini', weights=None, device='cpu').model.state_dict())
    bf16 = completer.complete(rgb, sparse)
    assert np.isfinite(bf16.depth).all() and bf16.depth.dtype == np.float32
    only = DepthCompleter('mini', weights=None, device='cpu', prefill_only=True).complete(rgb, sparse)
    np.testing.assert_array_equal(only.depth, only.prefill)
    assert only.timings_ms['network'] == 0.0
    with pytest.raises(ValueError):
        DepthCompleter('mini', weights=None, precision='int8')


def test_bf16_close_to_fp32() -> None:
    torch.manual_seed(1)
    model = build_model('mini').eval()
    inputs = _inputs()
    with torch.inference_mode():
        ref = model(*inputs)[-1]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model(*inputs)[-1]
    assert low.dtype == torch.float32                # TDU aggregation is kept in fp32
    assert float((low - ref).abs().max()) < 0.5


# ------------------------------------------------------------------ the prefill travels with the weights
def test_prefill_method_round_trips_through_metadata(tmp_path: Path) -> None:
    from depth_completion_ros.model.inference import resolve_prefill_method
    from depth_completion_ros.training.train import checkpoint_to_weights, save_checkpoint

    model = build_model('mini')
    linear = save_weights(model, tmp_path / 'linear.safetensors', prefill='linear')
    assert read_metadata(linear)['prefill'] == 'linear'
    assert load_model(linear)[1]['prefill'] == 'linear'
    completer = DepthCompleter('mini', weights=linear, device='cpu')
    assert completer.prefill_method == 'linear'                                    # auto = from the file
    with pytest.raises(ValueError, match="trained with the 'linear' prefill"):
        DepthCompleter('mini', weights=linear, device='cpu', prefill_method='ipbasic')
    assert DepthCompleter('mini', weights=linear, device='cpu', prefill_method='linear').prefill_method == 'linear'
    assert DepthCompleter(prefill_only=True, prefill_method='nearest').prefill_method == 'nearest'
    # a file written before the key existed was trained with ip_basic
    assert resolve_prefill_method('auto', {'variant': 'mini'}) == 'ipbasic'
    with pytest.raises(ValueError, match='unknown prefill'):
        save_weights(model, tmp_path / 'bad.safetensors', prefill='bilinear')
    # a training checkpoint keeps the method of its run's config
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / 'ckpt.safetensors', model, optimizer, 7, {'config': {'prefill': 'nearest'}})
    converted = checkpoint_to_weights(tmp_path / 'ckpt.safetensors', tmp_path / 'from_ckpt.safetensors')
    assert read_metadata(converted)['prefill'] == 'nearest'
    # and the completer really runs that prefill: with zeroed updates the network output is the linear fill
    from depth_completion_ros.core.interpolation import fill_linear
    from depth_completion_ros.training.train import freeze_aggregation, start_as_prefill

    start_as_prefill(model)
    freeze_aggregation(model)
    zero = save_weights(model, tmp_path / 'zero.safetensors', prefill='linear')
    rgb, sparse, _ = _inputs(30, 40)
    sparse_np = sparse[0, 0].numpy()
    result = DepthCompleter('mini', weights=zero, device='cpu').complete(
        rgb[0].permute(1, 2, 0).numpy().astype(np.uint8), sparse_np)
    assert np.allclose(result.prefill, fill_linear(sparse_np))
    assert np.allclose(result.depth, result.prefill, atol=1e-4)
