"""A tiny CPU training run lowers the loss; checkpoints are safetensors and resume where they stopped."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from depth_completion_ros.training.train import TrainConfig, lr_factor, paper_milestones, train


def _fixed_batch_loss(weights: Path | None, batch: dict[str, torch.Tensor]) -> float:
    from depth_completion_ros.core.prefill import prefill
    from depth_completion_ros.model import build_model, load_model, lrru_loss
    from depth_completion_ros.training.train import start_as_prefill

    if weights is None:
        model = build_model('mini')
        start_as_prefill(model)
    else:
        model, _ = load_model(weights)
    model.eval()
    with torch.no_grad():
        dense, anchors = prefill(batch['sparse'])
        return float(lrru_loss(model(batch['rgb'], batch['sparse'], dense, anchors), batch['gt']))


def test_tiny_training_run_lowers_loss(tmp_path: Path) -> None:
    from depth_completion_ros.data.datasets import MixedDepthDataset, parse_mix

    config = TrainConfig(data='synthetic:street', crop=(32, 64), batch=2, iterations=24, workers=0, seed=1,
                         out_dir=str(tmp_path / 'run'), log_every=4, checkpoint_every=12, augment=False)
    summary = train(config, progress=False)
    run = tmp_path / 'run'
    assert summary['iterations'] == 24
    for name in ('log.csv', 'log.json', 'loss.png', 'checkpoint.safetensors', 'lrru_mini.safetensors'):
        assert (run / name).is_file(), name
    log = json.loads((run / 'log.json').read_text())
    assert log['config']['seed'] == 1 and len(log['log']) == 6
    # Held-out batch of the same distribution (other seed): the trained network beats its starting point,
    # which is exactly the prefill (zero-initialised update weights).
    held_out = MixedDepthDataset(parse_mix('synthetic:street'), (32, 64), length=8, seed=99, augment=False)
    batch = torch.utils.data.default_collate([held_out[i] for i in range(8)])
    assert _fixed_batch_loss(run / 'lrru_mini.safetensors', batch) < _fixed_batch_loss(None, batch)
    # The shared aggregation stays frozen at (ones, 0): updates remain pure zero-sum residuals.
    from depth_completion_ros.model import load_model

    model, _ = load_model(run / 'lrru_mini.safetensors')
    assert float(model.aggregation.bias.detach()) == 0.0 and bool(torch.all(model.aggregation.weight == 1.0))


def test_checkpoint_resume(tmp_path: Path) -> None:
    base = dict(data='synthetic:room', crop=(32, 48), batch=1, workers=0, seed=2, out_dir=str(tmp_path),
                log_every=1, checkpoint_every=2, augment=True)
    train(TrainConfig(iterations=2, **base), progress=False)
    from safetensors import safe_open

    with safe_open(str(tmp_path / 'checkpoint.safetensors'), framework='pt') as handle:
        meta = json.loads(handle.metadata()['checkpoint'])
        assert meta['step'] == 2 and any(k.startswith('optim.') for k in handle.keys())
    summary = train(TrainConfig(iterations=3, resume=True, **base), progress=False)
    assert summary['iterations'] == 3
    steps = [line.split(',')[0] for line in (tmp_path / 'log.csv').read_text().splitlines()[1:]]
    assert steps == ['1', '2', '3']


def test_schedule_follows_paper_shape() -> None:
    milestones = paper_milestones(450)
    assert milestones == [200, 250, 300, 350, 400]
    assert lr_factor(0, milestones) == 1.0 and lr_factor(199, milestones) == 1.0
    assert lr_factor(200, milestones) == 0.5 and lr_factor(449, milestones) == 0.5 ** 5


def test_ddp_two_cpu_processes_via_torchrun(tmp_path: Path) -> None:
    """torchrun with 2 processes: gloo process group, DistributedSampler, one set of outputs from rank 0."""
    import subprocess
    import sys

    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
               '-m', 'depth_completion_ros.cli', 'train', '--iterations', '2', '--batch', '1', '--crop', '32x48',
               '--data', 'synthetic:room', '--workers', '0', '--log-every', '1', '--quiet', '--out', str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads((tmp_path / 'log.json').read_text())
    assert log['world_size'] == 2 and log['iterations'] == 2
    assert (tmp_path / 'lrru_mini.safetensors').is_file()
