"""Training throughput: this pipeline vs a typical CIFAR-repo pipeline, in one process run.

(a) ours: uint8 tensors in memory, batched crop/flip on the device, bf16 autocast, channels_last,
    batch 256 (optionally torch.compile);
(b) reference: per-sample PIL transforms (RandomCrop(32, 4), RandomHorizontalFlip, ToTensor,
    Normalize) through a DataLoader, fp32, NCHW, batch 128.
Both train ResNet-20 (32x32x3, the same synthetic images) with SGD. Prints img/s, the ratio, and
achieved model FLOP/s (3 x forward MACs x 2 per image) as a fraction of a bf16 matmul peak
measured in the same run.

    python scripts/benchmark_train.py [--steps 30] [--compile]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.augment import BatchAugment  # noqa: E402
from engine.data import synthetic  # noqa: E402
from engine.inference import Batches, autocast  # noqa: E402
from models import create_model  # noqa: E402
from models.complexity import profile  # noqa: E402

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def matmul_peak(dtype=torch.bfloat16, n=2048, reps=10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def ours(x_u8, y, steps: int, compile_: bool, bs: int = 256) -> float:
    model = create_model("resnet20").to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    prep, aug = Batches(MEAN, STD, torch.device("cpu"), True), BatchAugment(True, 4, True, 0)
    gen = torch.Generator().manual_seed(0)
    model.train()

    def step(idx):
        with autocast(torch.device("cpu"), "bf16"):
            loss = F.cross_entropy(step_model(prep(x_u8[idx], aug, gen)).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    warm = 5 if not compile_ else 10
    perm = torch.randint(0, len(y), (steps + warm, bs), generator=gen)
    for idx in perm[:warm]:
        step(idx)
    t = time.perf_counter()
    for idx in perm[warm:]:
        step(idx)
    return steps * bs / (time.perf_counter() - t)


def reference(x_u8, y, steps: int, bs: int = 128, workers: int = 2) -> float:
    import torchvision.transforms as T
    from PIL import Image

    class DS(torch.utils.data.Dataset):
        def __init__(self):
            self.imgs = [Image.fromarray(a) for a in x_u8.permute(0, 2, 3, 1).numpy()]
            self.tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                 T.Normalize(MEAN, STD)])

        def __len__(self):
            return len(self.imgs)

        def __getitem__(self, i):
            return self.tf(self.imgs[i]), int(y[i])

    loader = torch.utils.data.DataLoader(DS(), batch_size=bs, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=True)
    model = create_model("resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    model.train()
    done, warm, t = 0, 3, None
    while done < steps + warm:
        for xb, yb in loader:
            if done == warm:
                t = time.perf_counter()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps + warm:
                break
    return steps * bs / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps of pipeline (a); (b) gets 2x")
    ap.add_argument("--compile", action="store_true", help="also time (a) with torch.compile")
    args = ap.parse_args()
    raw = synthetic(image_size=32, channels=3, num_classes=10, train_size=10240, test_size=10, seed=0)
    x, y = raw.train_x, raw.train_y
    macs = profile(create_model("resnet20"), (3, 32, 32))["macs"]
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bf16 matmul peak {peak / 1e12:.2f} TFLOP/s")
    print(f"ResNet-20: {macs / 1e6:.1f} M MACs/image forward; training ~ 3 x 2 x MACs FLOP/image")
    rows = [("reference (PIL+DataLoader, fp32, NCHW, bs128)", reference(x, y, 2 * args.steps)),
            ("ours (tensor aug, bf16, channels_last, bs256)", ours(x, y, args.steps, False))]
    if args.compile:
        rows.append(("ours + torch.compile", ours(x, y, args.steps, True)))
    base = rows[0][1]
    for name, ips in rows:
        frac = ips * 6 * macs / peak
        print(f"{name:52s} {ips:8.0f} img/s   x{ips / base:4.2f}   model FLOP/s = {frac * 100:4.1f}% of bf16 peak")
    best = max(r[1] for r in rows[1:])
    print(f"speed-up ours/reference: {best / base:.2f}x (target >= 4)")


if __name__ == "__main__":
    main()
