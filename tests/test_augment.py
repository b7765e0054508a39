import torch

from engine.augment import BatchAugment, cutout, random_crop, random_flip


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_is_a_translation_with_zero_fill():
    x = torch.arange(1, 1 + 2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    out = random_crop(x, 2, _gen())
    assert out.shape == x.shape
    for b in range(2):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros(8, 8)
                src = x[b, 0]
                ys, xs = slice(max(dy, 0), 8 + min(dy, 0)), slice(max(dx, 0), 8 + min(dx, 0))
                yd, xd = slice(max(-dy, 0), 8 + min(-dy, 0)), slice(max(-dx, 0), 8 + min(-dx, 0))
                shifted[yd, xd] = src[ys, xs]
                found |= torch.equal(shifted, out[b, 0])
        assert found, "each crop must equal the input translated by at most 2 px, zero filled"


def test_crop_offsets_are_uniform_over_all_shifts():
    x = torch.zeros(4000, 1, 5, 5)
    x[:, :, 2, 2] = 1  # a single bright pixel: its new position gives the offset
    out = random_crop(x, 1, _gen(1))
    pos = out.flatten(1).argmax(1)
    counts = torch.bincount(pos, minlength=25).view(5, 5)[1:4, 1:4].flatten().float()
    assert counts.sum() == 4000 and (counts / 4000 - 1 / 9).abs().max() < 0.03


def test_flip_half_and_exact():
    x = torch.randn(2000, 3, 4, 4)
    out = random_flip(x, _gen())
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((flipped | same).all())
    assert abs(flipped.float().mean().item() - 0.5) < 0.05


def test_cutout_zeroes_a_square_of_the_requested_size():
    x = torch.ones(500, 2, 16, 16)
    out = cutout(x, 4, _gen())
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4  # full 4x4, or clipped at a border
    assert torch.equal(out[:, 0] == 0, out[:, 1] == 0)  # same hole in every channel


def test_augment_disabled_is_identity():
    x = torch.randint(0, 255, (8, 3, 8, 8), dtype=torch.uint8)
    aug = BatchAugment(enabled=False, crop_padding=4, flip=True, cutout=4)
    assert torch.equal(aug.geometric(x, _gen()), x) and torch.equal(aug.erase(x.float(), _gen()), x.float())


def test_augment_is_reproducible_from_the_generator():
    x = torch.randint(0, 255, (16, 3, 8, 8), dtype=torch.uint8)
    aug = BatchAugment(True, 2, True, 0)
    assert torch.equal(aug.geometric(x, _gen(3)), aug.geometric(x, _gen(3)))
    assert not torch.equal(aug.geometric(x, _gen(3)), aug.geometric(x, _gen(4)))
