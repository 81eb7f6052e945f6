"""Is the generated MobileNetV2 as fast as a hand-written one? Forward latency of the
archspec torch backend's model against a MobileNetV2 written by hand from the paper
(below, torchvision-style), with the same weights, measured side by side in one run.

    .venv/bin/python benchmarks/bench_torch_forward.py [--compile] [--repeats 15]

For each setting (batch 1 and 32, 1 and 2 threads, eager and, with --compile,
torch.compile) both models run interleaved (hand, archspec, hand, ...; the order swaps each
repeat), each timing a block of forwards. Columns: median wall ms per forward; `ratio`, the median
over repeats of archspec / hand wall time of the two blocks run back to back; `cpu ratio`,
the same with process CPU time (steadier on a machine shared with other jobs). Target
(issue 4): ratio within 1.00 +- 0.05.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

import archspec
from archspec.backends import get_backend


# ---- MobileNetV2 by hand (Sandler et al., 2018, Tables 1 and 2) ------------------------
class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin, cout, k=3, s=1, groups=1):
        super().__init__(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Table 1: 1x1 expansion (t), 3x3 depthwise (s), linear 1x1 projection, shortcut."""

    def __init__(self, cin, cout, s, t):
        super().__init__()
        hidden = round(cin * t)
        layers = [ConvBNReLU6(cin, hidden, 1)] if t != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, s, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.shortcut = s == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.shortcut else self.conv(x)


class MobileNetV2(nn.Module):
    TABLE_2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),  # t, c, n, s
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes=1000):
        super().__init__()
        layers, cin = [ConvBNReLU6(3, 32, 3, 2)], 32
        for t, c, n, s in self.TABLE_2:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.classifier(torch.flatten(x, 1))


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy conv / BN / linear tensors in construction order (both follow Table 2)."""
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
    a = [m for m in src.modules() if isinstance(m, kinds)]
    b = [m for m in dst.modules() if isinstance(m, kinds)]
    assert len(a) == len(b), (len(a), len(b))
    for m, n in zip(a, b):
        assert type(m) is type(n) and m.weight.shape == n.weight.shape, (m, n)
        n.load_state_dict(m.state_dict())


# ---- timing ------------------------------------------------------------------------------
def per_forward(model, x, iters: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per forward over a block of ``iters`` forwards."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        model(x)
    return (time.perf_counter() - wall) / iters, (time.process_time() - cpu) / iters


def measure(hand, gen, x, repeats: int, budget_s: float) -> dict:
    """Median wall ms per forward of each model, and the medians of the per-repeat
    archspec / hand ratios of wall and of CPU time. The two run back to back in every
    repeat, in alternating order, so a load change on the machine hits both."""
    with torch.inference_mode():
        for _ in range(2):
            hand(x), gen(x)
        iters = max(1, int(budget_s / max(per_forward(hand, x, 1)[0], 1e-6)))
        walls, ratios, cpu_ratios = {"hand": [], "gen": []}, [], []
        for r in range(repeats):
            pair = [("hand", hand), ("gen", gen)]
            got = {}
            for name, model in pair if r % 2 == 0 else reversed(pair):
                got[name] = per_forward(model, x, iters)
                walls[name].append(got[name][0])
            ratios.append(got["gen"][0] / got["hand"][0])
            cpu_ratios.append(got["gen"][1] / got["hand"][1])
    return {"hand": statistics.median(walls["hand"]) * 1e3,
            "gen": statistics.median(walls["gen"]) * 1e3,
            "ratio": statistics.median(ratios), "cpu_ratio": statistics.median(cpu_ratios)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per timed block")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()

    graph = archspec.load("mobilenetv2").with_(resolution=args.resolution).compile()
    gen = get_backend("torch").build(graph, seed=0).eval()
    hand = MobileNetV2().eval()
    copy_weights(gen, hand)
    probe = torch.randn(2, 3, args.resolution, args.resolution)
    with torch.no_grad():
        torch.testing.assert_close(gen(probe), hand(probe), rtol=1e-4, atol=1e-4)

    modes = [("eager", hand, gen)]
    if args.compile:
        modes.append(("compiled", torch.compile(hand), torch.compile(gen)))
    print(f"MobileNetV2 {args.resolution}x{args.resolution} forward, torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}, "
          f"median of {args.repeats} interleaved repeats")
    print(f"{'mode':9} {'batch':>5} {'threads':>7} {'hand ms':>9} {'archspec ms':>11} "
          f"{'ratio':>6} {'cpu ratio':>9}")
    for mode, h, g in modes:
        for threads in map(int, args.threads.split(",")):
            torch.set_num_threads(threads)
            for batch in map(int, args.batches.split(",")):
                x = torch.randn(batch, 3, args.resolution, args.resolution)
                m = measure(h, g, x, args.repeats, args.budget)
                print(f"{mode:9} {batch:5d} {threads:7d} {m['hand']:9.2f} {m['gen']:11.2f} "
                      f"{m['ratio']:6.3f} {m['cpu_ratio']:9.3f}", flush=True)


if __name__ == "__main__":
    main()
