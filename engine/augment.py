"""Batched tensor augmentation on the training device (airbench style).

Every op takes a uint8 or float batch ``(B, C, H, W)`` and a ``torch.Generator`` on the batch's
device, so a run is reproducible and its augmentation RNG can be checkpointed.
"""
from __future__ import annotations

import torch


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator, fill: int = 0) -> torch.Tensor:
    """Zero-pad by ``padding`` px and crop back to the input size at a random offset per sample."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    xp = torch.nn.functional.pad(x, (padding,) * 4, value=fill)
    off = torch.randint(0, 2 * padding + 1, (2, b), generator=gen, device=x.device)
    iy = off[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    ix = off[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    # one gather: (B, H, W, C) -> (B, C, H, W)
    return xp.permute(0, 2, 3, 1)[bi, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square (centre uniform over the image, clipped) per sample."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=gen, device=x.device)
    cx = torch.randint(0, w, (b, 1, 1), generator=gen, device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    hole = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)
    if size % 2 == 0:  # even size: one px less on the bottom/right
        hole &= (ys - cy < size // 2) & (xs - cx < size // 2)
    return x.masked_fill(hole[:, None], 0)


class BatchAugment:
    """Crop + flip (+ cutout) for a uint8 batch; ``enabled=False`` turns every op off.

    Args:
        enabled: master switch (``data.augment``); the BlurPool claim trains without shifts.
        crop_padding: px of zero padding for the random crop (0 = no translation).
        flip: random horizontal flips.
        cutout: side of the cutout square applied after normalisation (0 = off).
    """

    def __init__(self, enabled: bool = True, crop_padding: int = 4, flip: bool = True, cutout: int = 0):
        self.enabled, self.crop_padding, self.flip, self.cutout = enabled, crop_padding, flip, cutout

    def geometric(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.enabled:
            return x
        x = random_crop(x, self.crop_padding, gen)
        return random_flip(x, gen) if self.flip else x

    def erase(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return cutout(x, self.cutout, gen) if self.enabled else x
