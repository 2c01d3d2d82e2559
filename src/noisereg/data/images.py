"""Images stored as uint8 on the training device, turned into model inputs by batched tensor operations (airbench
style: no DataLoader, no per-image PIL transforms).

`ImagePipeline.inputs` normalises a batch, (x / 255 − mean) / std per channel, in one multiply-add. For training
batches, `draw` picks each sample's augmentation for a whole epoch from the batch iterator's own host generator
(so CPU and GPU runs see the same crops and flips, and a resumed run the same as an uninterrupted one), and
`augment` applies it: a random crop of the image zero-padded by `crop_padding` on every side, then a horizontal
flip with probability ½ — torchvision's RandomCrop(32, padding=4) and RandomHorizontalFlip, as one gather.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

# Columns of the per-sample augmentation table `draw` returns.
ROW_SHIFT, COLUMN_SHIFT, FLIP = 0, 1, 2


class ImagePipeline:
    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 0,
        flip: bool = False,
        channels_last: bool = False,
        device: torch.device | str = "cpu",
    ):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.crop_padding, self.flip, self.channels_last = int(crop_padding), bool(flip), bool(channels_last)
        self.device = torch.device(device)
        # (x / 255 − mean) / std = x · scale + shift, per channel
        std_tensor = torch.tensor(self.std, dtype=torch.float32)
        self.scale = (1.0 / (255.0 * std_tensor)).view(1, -1, 1, 1).to(self.device)
        self.shift = (-torch.tensor(self.mean, dtype=torch.float32) / std_tensor).view(1, -1, 1, 1).to(self.device)

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def to(self, device: torch.device | str, channels_last: bool | None = None) -> ImagePipeline:
        channels_last = self.channels_last if channels_last is None else channels_last
        return ImagePipeline(self.mean, self.std, self.crop_padding, self.flip, channels_last, device)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (n, C, H, W) → normalised float32 model inputs (channels-last in memory if asked)."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        inputs = images.to(dtype=torch.float32, memory_format=memory_format, copy=True)
        return inputs.mul_(self.scale).add_(self.shift)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Each of n samples' augmentation, (n, 3) int64 on the host: row shift and column shift in
        [0, 2·crop_padding] (the crop's corner in the padded image) and a flip bit."""
        shifts = torch.randint(0, 2 * self.crop_padding + 1, (n, 2), generator=generator)
        flips = torch.randint(0, 2, (n, 1), generator=generator) if self.flip else torch.zeros(n, 1, dtype=torch.int64)
        return torch.cat([shifts, flips], dim=1)

    def augment(self, images: torch.Tensor, augmentation: torch.Tensor) -> torch.Tensor:
        """Crop and flip uint8 images (n, C, H, W) as `augmentation` (rows of `draw`, on the images' device) says:
        one gather from each zero-padded image, with one index per output pixel shared by the channels."""
        n, channels, height, width = images.shape
        padding = self.crop_padding
        padded = F.pad(images, (padding,) * 4) if padding else images
        rows = augmentation[:, ROW_SHIFT, None] + torch.arange(height, device=images.device)
        columns = torch.arange(width, device=images.device)
        # Flipping the crop: its column j is the padded image's column shift + (W − 1 − j).
        columns = torch.where(augmentation[:, FLIP, None].bool(), width - 1 - columns, columns)
        columns = columns + augmentation[:, COLUMN_SHIFT, None]
        index = (rows[:, :, None] * padded.shape[-1] + columns[:, None, :]).reshape(n, 1, height * width)
        flat = padded.reshape(n, channels, -1)
        return flat.gather(2, index.expand(n, channels, height * width)).reshape(n, channels, height, width)
