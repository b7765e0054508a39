"""``synthetic(...)``: a procedurally generated, class-structured stand-in for offline work."""
from __future__ import annotations

import math

import torch

from .core import RawData

__all__ = ["synthetic"]


# --------------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------------
def _synthetic_split(templates: torch.Tensor, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k, c, s, _ = templates.shape
    y = torch.arange(n) % k
    y = y[torch.randperm(n, generator=g)]
    t = templates[y]                                              # (n, C, S, S)
    shift = max(1, s // 8)
    dy = torch.randint(-shift, shift + 1, (n,), generator=g)
    dx = torch.randint(-shift, shift + 1, (n,), generator=g)
    ar = torch.arange(s)
    rows = (ar[None, :] - dy[:, None]) % s                        # circular roll, per sample
    cols = (ar[None, :] - dx[:, None]) % s
    t = t.gather(2, rows[:, None, :, None].expand(n, c, s, s))
    t = t.gather(3, cols[:, None, None, :].expand(n, c, s, s))
    amp = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)         # contrast
    offset = 20.0 * torch.randn(n, 1, 1, 1, generator=g)          # brightness
    noise = 25.0 * torch.randn(n, c, s, s, generator=g)
    x = 128.0 + offset + 50.0 * amp * t + noise
    return x.round().clamp_(0, 255).to(torch.uint8), y.to(torch.int64)


def synthetic(image_size: int = 32, channels: int = 3, num_classes: int = 10, train_size: int = 2048,
              test_size: int = 512, seed: int = 0) -> RawData:
    """Procedurally generated class-structured images: a stand-in that needs no files.

    Class ``c`` has a fixed smooth template per channel: a sum of random low-frequency sinusoids,
    periodic over the image so circular shifts stay seamless, normalised to unit std. A sample is its
    class template rolled by up to ``image_size // 8`` pixels, scaled by a random contrast, shifted by
    a random brightness and covered with Gaussian noise, then rounded and clipped to uint8. Classes
    are balanced. Deterministic in ``seed``; the templates and each split draw from their own
    generators, so changing ``train_size`` leaves the test split unchanged.
    """
    for name, value, low in (("image_size", image_size, 2), ("channels", channels, 1),
                             ("num_classes", num_classes, 2), ("train_size", train_size, 1),
                             ("test_size", test_size, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"synthetic: {name} must be an integer >= {low}, got {value!r}")
    s, fmax, waves = image_size, max(1, min(3, image_size // 8)), 6
    g = torch.Generator().manual_seed(seed)
    fy = torch.randint(0, fmax + 1, (num_classes, channels, waves), generator=g).float()
    fx = torch.randint(0, fmax + 1, (num_classes, channels, waves), generator=g).float()
    fx = torch.where((fy == 0) & (fx == 0), torch.ones_like(fx), fx)  # no constant waves
    phase = 2 * math.pi * torch.rand(num_classes, channels, waves, generator=g)
    weight = torch.randn(num_classes, channels, waves, generator=g)
    grid = 2 * math.pi * torch.arange(s, dtype=torch.float32) / s
    arg = (fy[..., None, None] * grid[:, None] + fx[..., None, None] * grid[None, :] + phase[..., None, None])
    templates = (weight[..., None, None] * torch.cos(arg)).sum(2)     # (K, C, S, S)
    templates = (templates - templates.mean((2, 3), keepdim=True)) / templates.std((2, 3), keepdim=True).clamp_min(1e-6)

    train_x, train_y = _synthetic_split(templates, train_size, torch.Generator().manual_seed(seed * 1_000_003 + 1))
    test_x, test_y = _synthetic_split(templates, test_size, torch.Generator().manual_seed(seed * 1_000_003 + 2))
    return RawData(train_x, train_y, test_x, test_y, [f"class_{i}" for i in range(num_classes)])
