"""The training items of ``depth-completion train --self-supervised``: a target crop with its hidden points and
the full neighbouring images with the camera motion to each (``training.photometric`` turns them into losses).

Per item (seeded by (seed, index), as every training dataset here): a sequence source chosen by weight, a target
frame, the LiDAR sparsity augmentation of the hidden-points mode (``mix.thin_scan``: fewer rings, dropout), a
random crop, and 10..30 % of the points hidden as the sparse-depth target (``mix.hidden_points_target``). No flip
or colour jitter: a flip would also have to mirror the camera motion, and a jitter of the target alone would be
a photometric error the depth cannot explain. The neighbours stay full frames, so a crop pixel that moves out of
the crop between frames is still found in the neighbour.
"""
from __future__ import annotations

import numpy as np
import torch

from depth_completion_ros.data.datasets import SourceSpec, sample_to_tensors
from depth_completion_ros.training.mix import SparsityMixDataset, hidden_points_target, thin_scan


class SequenceDataset(SparsityMixDataset):
    """``length`` items of target crops + neighbours from sequence sources (``data.sequence``)."""

    def __init__(self, sources: list[SourceSpec], crop: tuple[int, int], length: int, seed: int = 0,
                 neighbours: int = 1) -> None:
        from depth_completion_ros.data.errors import DataError
        from depth_completion_ros.data.sequence import SEQUENCE_DATA_HELP

        synthetic = [s.spec for s in sources if s.spec.startswith('synthetic:')]
        if synthetic:   # the base class would skip opening them; the synthetic frames are single views
            raise DataError(f'{synthetic[0]}: --self-supervised needs real sequences: {SEQUENCE_DATA_HELP}')
        self.neighbours = neighbours   # read by _open, which the base class calls
        super().__init__(sources, crop, length, seed=seed, augment=False)

    def _open(self, spec: str, intrinsics: tuple[float, float, float, float] | None,
              depth_scale: float | None) -> object:
        from depth_completion_ros.data.sequence import open_sequence

        return open_sequence(spec, neighbours=self.neighbours)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from depth_completion_ros.data.sequence import SequenceFrame

        rng = np.random.default_rng([self.seed, index])
        which = int(rng.choice(len(self.specs), p=self.probabilities))
        source = self.sources[which]
        frame: SequenceFrame = source[int(rng.integers(len(source)))]  # type: ignore[index]
        full = frame.sample
        sample = self._random_crop(thin_scan(full, rng), rng)
        # The crop's place in the full frame, from the shifted principal point (crop_sample moves it by x0, y0).
        x0 = int(round(full.camera.cx - sample.camera.cx))
        y0 = int(round(full.camera.cy - sample.camera.cy))
        visible, target = hidden_points_target(sample.sparse, rng)
        item = sample_to_tensors(sample.rgb, visible, target, sample.camera.K)
        # Bag images view read-only message buffers: np.require copies those (torch needs writable arrays).
        item['neighbours'] = torch.stack([torch.from_numpy(np.require(image, requirements=['C', 'W'])).permute(2, 0, 1)
                                          .float() for image in frame.neighbours])
        item['K_neighbour'] = torch.from_numpy(np.asarray(full.camera.K, np.float32))
        item['T'] = torch.from_numpy(np.stack([T.matrix for T in frame.T_source_target]).astype(np.float32))
        item['offset'] = torch.tensor([y0, x0])
        return item
