"""Fine-tuning options of the training loop: the stored prefill, the L2 weight, frozen BatchNorm statistics."""
from __future__ import annotations

from pathlib import Path

import torch

from depth_completion_ros.model import build_model, load_model, lrru_loss, save_weights
from depth_completion_ros.model.weights import read_metadata
from depth_completion_ros.training.train import TrainConfig, start_as_prefill, train


def test_l2_weight_scales_only_the_squared_term() -> None:
    gt = torch.tensor([[[[2.0, 0.0, 4.0]]]])
    pred = torch.tensor([[[[3.0, 9.0, 1.0]]]])                  # errors 1 and 3 on the two valid pixels
    assert float(lrru_loss([pred], gt, l2_weight=0.0)) == 2.0      # mean |e|
    assert float(lrru_loss([pred], gt)) == 2.0 + 5.0               # + mean e^2
    assert float(lrru_loss([pred], gt, l2_weight=0.5)) == 2.0 + 2.5


def test_fine_tune_keeps_batchnorm_statistics_and_records_the_prefill(tmp_path: Path) -> None:
    model = build_model('mini')
    start_as_prefill(model)
    init = save_weights(model, tmp_path / 'init.safetensors')
    config = TrainConfig(data='synthetic:room', crop=(32, 48), batch=2, iterations=3, workers=0, seed=2,
                         out_dir=str(tmp_path / 'run'), log_every=1, checkpoint_every=3, augment=False,
                         init_weights=str(init), zero_updates=True, freeze_batchnorm=True, l2_weight=0.0,
                         prefill='linear')
    train(config, progress=False)
    tuned, info = load_model(tmp_path / 'run' / 'lrru_mini.safetensors')
    assert info['prefill'] == 'linear' and read_metadata(tmp_path / 'run' / 'lrru_mini_step3.safetensors')[
        'prefill'] == 'linear'
    before, after = model.state_dict(), tuned.state_dict()
    statistics = [k for k in before if k.endswith(('running_mean', 'running_var'))]
    assert statistics and all(torch.equal(before[k], after[k]) for k in statistics)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith('weight_head.weight'))
