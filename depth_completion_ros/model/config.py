"""LRRU variant table: one :class:`LRRUConfig` per published size (LRRU.md §1).

Every width in the network is a multiple of the base channel count ``bc``; the encoder stages use
``4bc, 8bc, 16bc, 16bc, 16bc`` and the guidance/update features use ``2bc``.

Stochastic depth (LRRU.md §2.9): the authors' configs use survival ``prob`` 0.5 for Tiny/Small/Base in both
training and validation. For Mini the training config says 0.1 but the validation config says 1.0, and the
published Mini numbers were reproduced with 1.0. Training with 0.1 while evaluating with 1.0 makes the eval
scaling (``prob_i * residual + identity``) disagree with what the network saw in training, so we use a single
value for both and pick **1.0 for Mini** (stochastic depth off): it is consistent, and it is the value that
matches the released Mini checkpoint's evaluation. Override it per config if you need the other reading.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# RGB statistics on the 0..255 scale (LRRU.md §2.1); the model normalises inside forward().
RGB_MEAN: tuple[float, float, float] = (90.995, 96.2278, 94.3213)
RGB_STD: tuple[float, float, float] = (79.2382, 80.5267, 82.1483)


@dataclass(frozen=True)
class LRRUConfig:
    name: str
    base_channels: int                  # ``bc``
    survival_prob: float = 0.5          # stochastic depth: last block's keep probability (first block: 1.0)
    num_iterations: int = 4             # TDU steps guided by 1/8, 1/4, 1/2, 1 scale features
    stage_multipliers: tuple[int, ...] = field(default=(4, 8, 16, 16, 16))
    input_multiple: int = 16            # 4 stride-2 stages -> H, W padded to a multiple of 16

    @property
    def stage_channels(self) -> list[int]:
        return [m * self.base_channels for m in self.stage_multipliers]

    @property
    def guide_channels(self) -> int:
        """Width of the full-resolution guidance features and of the TDU depth/guide encoders."""
        return 2 * self.base_channels

    def to_dict(self) -> dict:
        data = asdict(self)
        data['stage_multipliers'] = list(self.stage_multipliers)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LRRUConfig:
        data = dict(data)
        data['stage_multipliers'] = tuple(data.get('stage_multipliers', (4, 8, 16, 16, 16)))
        return cls(**data)


VARIANTS: dict[str, LRRUConfig] = {
    'mini': LRRUConfig('mini', base_channels=2, survival_prob=1.0),
    'tiny': LRRUConfig('tiny', base_channels=4, survival_prob=0.5),
    'small': LRRUConfig('small', base_channels=8, survival_prob=0.5),
    'base': LRRUConfig('base', base_channels=16, survival_prob=0.5),
}

# Parameter counts of the authors' implementation (LRRU.md §1); ours are equal (test/test_model.py).
REFERENCE_PARAMS: dict[str, int] = {'mini': 329_674, 'tiny': 1_309_478, 'small': 5_219_806, 'base': 20_843_342}


def get_config(variant: str) -> LRRUConfig:
    key = variant.lower()
    if key not in VARIANTS:
        raise KeyError(f'unknown LRRU variant {variant!r}; choose from {", ".join(VARIANTS)}')
    return VARIANTS[key]
