"""LRRU training loop: seeded data mix, AdamW + LRRU's step schedule, AMP on CUDA, DDP via torchrun, safetensors
checkpoints (model + optimiser, no pickles), CSV/JSON logs and a loss plot.

Run on one process (``depth-completion train ...``) or on several (``torchrun --nproc_per_node N -m
depth_completion_ros.cli train ...``): WORLD_SIZE > 1 switches on ``torch.distributed`` (nccl on CUDA, gloo on CPU)
with a DistributedSampler; every rank sees different items of the same seeded stream.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# LRRU.md §2.8: 45 epochs, lr x0.5 at each of these epochs (x1 at 15); scaled to the run length.
PAPER_EPOCHS = 45
PAPER_DECAY_EPOCHS = (20, 25, 30, 35, 40)


@dataclass
class TrainConfig:
    variant: str = 'mini'
    data: str = 'synthetic:street=0.7,synthetic:room=0.3'
    crop: tuple[int, int] = (128, 320)
    batch: int = 4
    iterations: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0
    workers: int = 2
    amp: bool = True                 # only takes effect on CUDA
    augment: bool = True
    device: str = 'auto'
    out_dir: str = 'runs/train'
    resume: bool = False
    init_weights: str | None = None  # start from these weights (fine-tuning); optimiser starts fresh
    zero_updates: bool = False       # with init_weights: re-zero the update heads, so the start is the prefill
    checkpoint_every: int = 200
    log_every: int = 10
    rgbd_intrinsics: tuple[float, float, float, float] | None = None
    rgbd_depth_scale: float | None = None
    decay_milestones: list[int] = field(default_factory=list)   # filled from the paper schedule when empty
    freeze_aggregation: bool = True  # keep the shared TDU kernel at ones and bias at 0 (see freeze_aggregation)
    prefill: str = 'ipbasic'         # core.prefill method the network learns to correct; stored in the weights
    l2_weight: float = 1.0           # weight of the L2 term of the loss (LRRU: 1)
    freeze_batchnorm: bool = False   # fine-tuning with small batches: keep the BatchNorm statistics fixed
    # Photometric self-supervision from consecutive frames (training.photometric; data = sequences):
    self_supervised: bool = False
    neighbours: int = 1              # frames on each side warped into the target (t-1, t+1 for 1)
    photometric_weight: float = 1.0
    sparse_weight: float = 1.0       # hidden measured points, L1 + l2_weight x L2
    smoothness_weight: float = 1e-3

    def loss_terms(self) -> tuple[str, ...]:
        """Columns logged besides the total loss (one line each in the loss plot)."""
        return ('photometric', 'sparse', 'smoothness') if self.self_supervised else ()


def lr_factor(step: int, milestones: list[int]) -> float:
    return 0.5 ** sum(step >= m for m in milestones)


def paper_milestones(iterations: int) -> list[int]:
    return [int(round(iterations * e / PAPER_EPOCHS)) for e in PAPER_DECAY_EPOCHS]


# ------------------------------------------------------------------------------------- checkpoint (safetensors)
def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    extra: dict[str, Any]) -> None:
    """Model and AdamW state as tensors in one safetensors file; scalars/config as JSON metadata."""
    from safetensors.torch import save_file

    tensors = {f'model.{k}': v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    for index, state in opt_state['state'].items():
        for key, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f'optim.{index}.{key}'] = tensor.detach().cpu().reshape(-1).contiguous()
    meta = {'step': step, 'param_groups': opt_state['param_groups'], **extra}
    tmp = path.with_suffix('.tmp')
    save_file(tensors, str(tmp), metadata={'checkpoint': json.dumps(meta)})
    tmp.replace(path)   # atomic: a crash never leaves a half-written checkpoint


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework='pt') as handle:
        meta = json.loads(handle.metadata()['checkpoint'])
    tensors = load_file(str(path))
    model.load_state_dict({k[len('model.'):]: v for k, v in tensors.items() if k.startswith('model.')})
    state: dict[int, dict[str, torch.Tensor]] = {}
    params = [p for group in optimizer.param_groups for p in group['params']]
    for key, value in tensors.items():
        if key.startswith('optim.'):
            _, index, name = key.split('.', 2)
            shape = params[int(index)].shape if name != 'step' else ()
            state.setdefault(int(index), {})[name] = value.reshape(shape)
    optimizer.load_state_dict({'state': state, 'param_groups': meta['param_groups']})
    return meta


def checkpoint_to_weights(checkpoint: str | Path, out: str | Path, variant: str = 'mini') -> Path:
    """Weights file (model.save_weights format) from a training checkpoint, e.g. of an interrupted run."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from depth_completion_ros.model import build_model, save_weights

    with safe_open(str(checkpoint), framework='pt') as handle:
        meta = json.loads(handle.metadata()['checkpoint'])
    model = build_model(variant)
    tensors = load_file(str(checkpoint))
    model.load_state_dict({k[len('model.'):]: v for k, v in tensors.items() if k.startswith('model.')})
    config = meta.get('config', {})
    return save_weights(model, out, metadata={'training': {'from_checkpoint_step': meta['step'], 'config': config}},
                        prefill=config.get('prefill', 'ipbasic'))


# ---------------------------------------------------------------------------------------------- the loop
def _setup_distributed() -> tuple[int, int, int]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return 0, 0, 1
    import torch.distributed as dist

    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return dist.get_rank(), local_rank, world


def _device(name: str, local_rank: int) -> torch.device:
    if name == 'auto':
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def plot_losses(csv_path: Path, png_path: Path, terms: tuple[str, ...] = ()) -> None:
    """The logged loss (and running mean); with ``terms`` (columns of the CSV) one panel per term below it,
    each on its own scale (the photometric error and the depth terms differ by orders of magnitude)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = np.array([int(r['step']) for r in rows])
    columns = [('loss', 'weighted total' if terms else 'L1 + L2 loss (m, m²)'),
               *((term, term) for term in terms if term in rows[0])]
    fig, axes = plt.subplots(len(columns), 1, figsize=(7, 4 + 2 * (len(columns) - 1)), sharex=True, squeeze=False)
    for ax, (column, label) in zip(axes[:, 0], columns, strict=True):
        losses = np.array([float(r[column]) for r in rows])
        ax.plot(steps, losses, lw=0.8, alpha=0.5, label=f'{column} (logged)')
        if len(losses) >= 5:   # running mean makes the trend readable on noisy mixed batches
            window = max(5, len(losses) // 20)
            smooth = np.convolve(losses, np.ones(window) / window, mode='valid')
            ax.plot(steps[window - 1:], smooth, lw=1.5, label=f'running mean ({window})')
        ax.set_ylabel(label)
        if np.all(losses > 0):
            ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()
    axes[-1, 0].set_xlabel('iteration')
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run the training; returns the summary written to ``out_dir/log.json`` (rank 0)."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset
    from tqdm import tqdm

    from depth_completion_ros.core.prefill import check_prefill_method, prefill
    from depth_completion_ros.data.datasets import parse_mix
    from depth_completion_ros.model import build_model, load_model, lrru_loss, save_weights
    from depth_completion_ros.training.mix import SparsityMixDataset

    check_prefill_method(config.prefill)
    rank, local_rank, world = _setup_distributed()
    device = _device(config.device, local_rank)
    torch.manual_seed(config.seed)
    out = Path(config.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    milestones = config.decay_milestones or paper_milestones(config.iterations)

    if config.init_weights:
        model, _ = load_model(config.init_weights, variant=config.variant)
        model.train()
        if config.zero_updates:     # keep the learned features, restart the corrections (e.g. a new prefill)
            start_as_prefill(model)
    else:
        model = build_model(config.variant)
        start_as_prefill(model)
    if config.freeze_aggregation:
        freeze_aggregation(model)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.999))
    start_step, history_seconds = 0, 0.0
    checkpoint = out / 'checkpoint.safetensors'
    if config.resume and checkpoint.is_file():
        meta = load_checkpoint(checkpoint, model, optimizer)
        start_step, history_seconds = int(meta['step']), float(meta.get('wall_seconds', 0.0))
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == 'cuda' else None)

    per_step = config.batch * world
    dataset: SparsityMixDataset
    if config.self_supervised:
        from depth_completion_ros.training.self_supervised import SequenceDataset

        dataset = SequenceDataset(parse_mix(config.data), config.crop, config.iterations * per_step,
                                  seed=config.seed, neighbours=config.neighbours)
    else:
        dataset = SparsityMixDataset(parse_mix(config.data), config.crop, config.iterations * per_step,
                                     seed=config.seed, augment=config.augment, rgbd_intrinsics=config.rgbd_intrinsics,
                                     rgbd_depth_scale=config.rgbd_depth_scale)
    terms = config.loss_terms()
    remaining = Subset(dataset, range(start_step * per_step, len(dataset)))   # resume = skip consumed items
    sampler = DistributedSampler(remaining, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
    loader = DataLoader(remaining, batch_size=config.batch, sampler=sampler, shuffle=False,
                        num_workers=config.workers, persistent_workers=config.workers > 0, drop_last=True)

    use_amp = config.amp and device.type == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=use_amp)
    csv_path = out / 'log.csv'
    csv_file = None
    if rank == 0:
        new_file = not (config.resume and csv_path.is_file() and start_step > 0)
        csv_file = csv_path.open('w' if new_file else 'a', newline='')
        if new_file:
            csv_file.write(','.join(('step', 'loss', 'lr', 'seconds_per_iter', 'elapsed_s', *terms)) + '\n')
    bar = tqdm(total=config.iterations, initial=start_step, disable=not progress or rank != 0, unit='it',
               dynamic_ncols=True)
    step, started, last_log = start_step, time.perf_counter(), time.perf_counter()
    running: list[float] = []
    running_terms: dict[str, list[float]] = {term: [] for term in terms}
    panel: dict[str, torch.Tensor] | None = None
    ddp_model.train()
    if config.freeze_batchnorm:      # running statistics of the initial weights; affine parameters still learn
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    for batch in loader:
        if step >= config.iterations:
            break
        for group in optimizer.param_groups:
            group['lr'] = config.lr * lr_factor(step, milestones)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        rgb, sparse, gt = batch['rgb'], batch['sparse'], batch['gt']
        with torch.no_grad():
            dense, anchors = prefill(sparse, config.prefill)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            outputs = ddp_model(rgb, sparse, dense, anchors)
        if config.self_supervised:
            from depth_completion_ros.training.photometric import LossWeights, self_supervised_loss

            weights = LossWeights(config.photometric_weight, config.sparse_weight, config.smoothness_weight)
            loss, values, panel = self_supervised_loss(outputs, batch, weights, l2_weight=config.l2_weight)
            for term in terms:
                running_terms[term].append(values[term])
        else:
            loss = lrru_loss([o.float() for o in outputs], gt, l2_weight=config.l2_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        running.append(float(loss.detach()))
        bar.update(1)
        if step % config.log_every == 0 or step == config.iterations:
            now = time.perf_counter()
            mean_loss = float(np.mean(running))
            seconds_per_iter = (now - last_log) / max(len(running), 1)
            term_means = {term: float(np.mean(values)) if values else 0.0 for term, values in running_terms.items()}
            running, last_log = [], now
            running_terms = {term: [] for term in terms}
            bar.set_postfix(loss=f'{mean_loss:.4f}', lr=f'{optimizer.param_groups[0]["lr"]:.2e}',
                            **{term[:5]: f'{value:.4f}' for term, value in term_means.items()})
            if csv_file is not None:
                csv_file.write(f'{step},{mean_loss:.6f},{optimizer.param_groups[0]["lr"]:.6g},'
                               f'{seconds_per_iter:.4f},{history_seconds + now - started:.1f}'
                               + ''.join(f',{value:.6f}' for value in term_means.values()) + '\n')
                csv_file.flush()
        if rank == 0 and (step % config.checkpoint_every == 0 or step == config.iterations):
            save_checkpoint(checkpoint, model, optimizer, step,
                            {'wall_seconds': history_seconds + time.perf_counter() - started,
                             'config': _jsonable(config)})
            # A weights snapshot per checkpoint (1.4 MB for Mini): checkpoints are chosen on validation frames.
            save_weights(model, out / f'lrru_{config.variant}_step{step}.safetensors', prefill=config.prefill,
                         metadata={'training': {'step': step, 'config': _jsonable(config)}})
            if panel is not None:   # what the photometric loss saw at this checkpoint
                from depth_completion_ros.training.photometric import save_sample_panel

                save_sample_panel(panel, out / f'sample_step{step}.png', title=f'step {step}')
    bar.close()
    wall = history_seconds + time.perf_counter() - started
    summary: dict[str, Any] = {}
    if rank == 0:
        assert csv_file is not None
        csv_file.close()
        rows = list(csv.DictReader(csv_path.open()))
        summary = {
            'config': _jsonable(config), 'iterations': step, 'wall_seconds': round(wall, 1),
            'final_loss': float(rows[-1]['loss']) if rows else None,
            'first_loss': float(rows[0]['loss']) if rows else None,
            'lr_milestones': milestones, 'world_size': world, 'device': str(device),
            'hardware': _hardware(device), 'torch': torch.__version__,
        }
        (out / 'log.json').write_text(json.dumps({**summary, 'log': rows}, indent=1))
        plot_losses(csv_path, out / 'loss.png', terms)
        save_weights(model, out / f'lrru_{config.variant}.safetensors', metadata={'training': summary},
                     prefill=config.prefill)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return summary


def start_as_prefill(model: torch.nn.Module) -> None:
    """Zero the TDU kernel-weight heads: sigmoid(0) = 0.5 on every tap, minus the tap mean = 0, so every update
    is exactly zero and the untrained network outputs the prefill with the measured points re-imposed.
    Training then only has to learn improvements over the prefill (gradients still flow: d sigmoid(0) = 0.25)."""
    for update in model.updates:
        torch.nn.init.zeros_(update.weight_head.weight)
        torch.nn.init.zeros_(update.weight_head.bias)


def freeze_aggregation(model: torch.nn.Module) -> None:
    """Fix the shared deformable aggregation at kernel = ones, bias = 0 and stop training them.

    With them fixed, every update is a pure zero-sum residual (the tap weights sum to 0): a locally flat depth
    map is left exactly unchanged. Learned, they act globally: on our mixed data the bias drifted to +9 cm per
    iteration (rooms with 500 samples want depths pushed back, the near-biased prefill under-estimates) and
    added ~+0.3 m to every KITTI pixel after 4 iterations; a non-uniform kernel likewise scales depth globally.
    """
    with torch.no_grad():
        model.aggregation.weight.fill_(1.0)
        model.aggregation.bias.zero_()
    model.aggregation.requires_grad_(False)


def _jsonable(config: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def _hardware(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, ' \
           f'{torch.get_num_threads()} torch threads'


def epochs_to_iterations(epochs: float, dataset_items: int, batch: int, world: int = 1) -> int:
    return max(1, int(math.ceil(epochs * dataset_items / (batch * world))))
