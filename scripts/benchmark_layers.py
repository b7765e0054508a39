"""CPU micro-benchmarks of the layer library (one process, prints a table).

1. Involution aggregation (B=32, C=64, 32x32, K=7, stride 1, G=4, forward+backward): the default
   ``involution`` custom op vs the ``nn.Unfold`` reference (seed 003). Targets: >= 2.5x faster and
   <= 1/4 of the reference's extra peak memory. Also the op on channels_last inputs, as RedNet trains.
2. ``SymPadConv2d`` (C2sp) vs a plain VALID 2x2 conv and vs ``SamePadConv2d`` (C2), forward+backward,
   with plain-autograd implementations of the symmetric pad and the library's two forwards, each with its
   one-concatenation backward (target overhead <= 15%).
3. ``BlurPool2d`` vs the seed-002 ``Downsample`` (forward+backward).

Time: median of ``--reps`` repetitions after ``--warmup`` warm-up calls (``time.perf_counter``).
Memory (CPU, no CUDA): glibc ``mallopt(M_MMAP_THRESHOLD, 64 KiB)`` makes every large tensor its own
mmap, returned to the OS on free, so resident memory tracks live tensors; the peak is read from
``VmHWM`` in ``/proc/self/status`` after resetting it with ``echo 5 > /proc/self/clear_refs``.
"Extra peak" = peak RSS during one forward+backward minus RSS before it (inputs already allocated).
Memory is measured after all timings (the mmap threshold slows allocation down); ``malloc_trim(0)``
before each measurement returns cached heap pages. Cheap ops use >= 15 repetitions.

Usage: ``python scripts/benchmark_layers.py [--quick] [--threads 1] [--reps N]``.
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.layers import BlurPool2d, SymPadConv2d, involution, involution_unfold  # noqa: E402
from models.layers.padding import symmetric_pad, symmetric_pad_sizes  # noqa: E402


def bench(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def extra_peak_mib(fn, libc) -> float:
    fn()  # warm (lazy inits)
    libc.malloc_trim(0)  # hand cached free heap pages back, so reuse shows up as new resident pages
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status()["VmRSS"]
    fn()
    return (_status()["VmHWM"] - before) / 2 ** 20


def fwd_bwd(fn, *inputs):
    def run():
        for t in inputs:
            t.grad = None
        y = fn(*inputs)
        y.backward(torch.ones_like(y))
    return run


# --- exact variants of symmetric padding (k=2) -------------------------------------------------
def sympad_four_pads(x, k=2):
    """Seed 000: pad each of the 4 groups separately, then concatenate."""
    return torch.cat([F.pad(g, p) for g, p in zip(x.chunk(4, 1), symmetric_pad_sizes(k))], 1)


def sympad_one_pad_slices(x, k=2):
    """One pad of k//2 on every side, then a per-group crop and one concatenation."""
    big, (_, c, h, w) = k // 2, x.shape
    xp, q = F.pad(x, (big,) * 4), c // 4
    return torch.cat([xp[:, g * q:(g + 1) * q, big - t:big - t + h + k - 1, big - l:big - l + w + k - 1]
                      for g, (l, _r, t, _b) in enumerate(symmetric_pad_sizes(k))], 1)


def sympad_zeros_copy(x, k=2):
    """Allocate the zero canvas once and copy each group to its offset (one pass over the data)."""
    b, c, h, w = x.shape
    q = c // 4
    out = x.new_zeros(b, c, h + k - 1, w + k - 1)
    for g, (l, _r, t, _b) in enumerate(symmetric_pad_sizes(k)):
        out[:, g * q:(g + 1) * q, t:t + h, l:l + w] = x[:, g * q:(g + 1) * q]
    return out


class Downsample(nn.Module):
    """Seed 002 ``Downsample`` (numpy taps, ReflectionPad2d layer)."""

    def __init__(self, channels, filt_size=4, stride=2):
        super().__init__()
        import numpy as np
        a = np.array({3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}[filt_size])
        filt = torch.Tensor(a[:, None] * a[None, :])
        filt = filt / torch.sum(filt)
        self.register_buffer("filt", filt[None, None, :, :].repeat((channels, 1, 1, 1)))
        lo, hi = int((filt_size - 1) / 2), int(np.ceil((filt_size - 1) / 2))
        self.pad = nn.ReflectionPad2d([lo, hi, lo, hi])
        self.stride = stride

    def forward(self, inp):
        return F.conv2d(self.pad(inp), self.filt, stride=self.stride, groups=inp.shape[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (B=4) for a smoke run")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (default 1: on a shared 2-core machine 2 spinning OpenMP threads "
                         "per process make timings erratic)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B = 4 if args.quick else 32
    reps = args.reps or (3 if args.quick else 5)
    C, H, K = 64, 32, 7

    # 1. involution aggregation --------------------------------------------------------------
    G = C // 16
    x = torch.randn(B, C, H, H, requires_grad=True)
    ker = torch.randn(B, G, K * K, H, H, requires_grad=True)
    with torch.no_grad():
        assert torch.allclose(involution(x, ker, K), involution_unfold(x, ker, K), atol=1e-4)
    # as RedNet trains (channels_last): x channels_last, the kernel a view of a channels_last conv output
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    ker_cl = ker.detach().flatten(1, 2).contiguous(memory_format=torch.channels_last).view_as(ker).requires_grad_()
    inv_fns = {"involution (default, tap loop)": fwd_bwd(lambda a, b: involution(a, b, K), x, ker),
               "involution, channels_last inputs": fwd_bwd(lambda a, b: involution(a, b, K), x_cl, ker_cl),
               "involution_unfold (seed 003 ref)": fwd_bwd(lambda a, b: involution_unfold(a, b, K), x, ker)}
    inv_t = {n: bench(f, args.warmup, reps) for n, f in inv_fns.items()}

    # 2. symmetric padding ---------------------------------------------------------------------
    xs = torch.randn(B, C, H, H, requires_grad=True)
    w = torch.randn(C, C, 2, 2, requires_grad=True)
    ref = F.conv2d(sympad_four_pads(xs), w)
    variants = {"sympad: 4 pads + cat (seed 000)": sympad_four_pads,
                "sympad: 1 pad + 4 crops + cat": sympad_one_pad_slices,
                "sympad: zeros + 4 copies": sympad_zeros_copy,
                "sympad: fused, 1-cat bwd (CPU path)": lambda t: symmetric_pad(t, 2, fused=True),
                "sympad: pad+cat, 1-cat bwd (GPU path)": lambda t: symmetric_pad(t, 2, fused=False)}
    for f in variants.values():
        assert torch.equal(F.conv2d(f(xs), w), ref)
    sym_fns = {"plain 2x2 conv, VALID (31x31 out)": fwd_bwd(lambda a, b: F.conv2d(a, b), xs, w),
               "SamePadConv2d C2 (F.pad + conv)": fwd_bwd(lambda a, b: F.conv2d(F.pad(a, (0, 1, 0, 1)), b), xs, w)}
    sym_fns.update({n: fwd_bwd(lambda a, b, f=f: F.conv2d(f(a), b), xs, w) for n, f in variants.items()})
    m = SymPadConv2d(C, C, 2, bias=False)
    sym_fns["SymPadConv2d module (library)"] = fwd_bwd(m, xs)
    cheap_reps = max(reps, 15)  # cheap ops: more repetitions against noise from a shared machine
    sym_t = {n: bench(f, args.warmup + 2, cheap_reps) for n, f in sym_fns.items()}

    # 3. BlurPool ----------------------------------------------------------------------------
    xb = torch.randn(B, C, H, H, requires_grad=True)
    bp, ds = BlurPool2d(C, 4), Downsample(C, 4)
    assert torch.allclose(bp(xb), ds(xb))
    blur_fns = {"BlurPool2d (f=4, reflect)": fwd_bwd(bp, xb), "seed 002 Downsample (f=4)": fwd_bwd(ds, xb)}
    blur_t = {n: bench(f, args.warmup + 2, cheap_reps) for n, f in blur_fns.items()}

    # memory (after timings) ------------------------------------------------------------------
    mem = {}
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD = 64 KiB, fixed
        for name, f in {**inv_fns, **sym_fns, **blur_fns}.items():
            mem[name] = extra_peak_mib(f, libc)
    except OSError as e:  # non-glibc / no /proc
        print(f"memory measurement unavailable: {e}")

    def fmt(name, t, base_t=None, base_m=None, ratio_label="x ref"):
        m_ = mem.get(name, float("nan"))
        rel_t = f"{t / base_t:6.2f}" if base_t else "      "
        rel_m = f"{m_ / base_m:6.3f}" if base_m else "      "
        return f"{name:38s} {t * 1e3:10.1f} {rel_t} {m_:12.1f} {rel_m}"

    print(f"torch {torch.__version__}, threads={args.threads}, B={B}, C={C}, {H}x{H}, median of {reps} "
          f"(involution) / {cheap_reps} (others) reps after warm-up, forward+backward; "
          f"memory = extra peak RSS (VmHWM) with 64 KiB mmap threshold")
    print(f"{'variant':38s} {'time ms':>10s} {'t/ref':>6s} {'extra MiB':>12s} {'m/ref':>6s}")
    print(f"-- involution aggregation, K={K}, G={G}, stride 1 (ref = unfold)")
    rn = "involution_unfold (seed 003 ref)"
    for n, t in inv_t.items():
        print(fmt(n, t, inv_t[rn], mem.get(rn)))
    print(f"   speed-up {inv_t[rn] / inv_t['involution (default, tap loop)']:.2f}x, memory "
          f"{mem.get('involution (default, tap loop)', float('nan')) / mem.get(rn, float('nan')):.3f} of ref")
    print("-- even 2x2 conv, 64->64 (ref = plain VALID 2x2 conv)")
    rn = "plain 2x2 conv, VALID (31x31 out)"
    for n, t in sym_t.items():
        print(fmt(n, t, sym_t[rn], mem.get(rn)))
    print("-- BlurPool, 64 ch (ref = seed 002 Downsample)")
    rn = "seed 002 Downsample (f=4)"
    for n, t in blur_t.items():
        print(fmt(n, t, blur_t[rn], mem.get(rn)))


if __name__ == "__main__":
    main()
