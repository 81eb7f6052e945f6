"""Training throughput: archspec's generated MobileNetV2-CIFAR against the hand-written
PyTorch model it follows (kuangliu/pytorch-cifar models/mobilenetv2.py, 2,296,922
parameters). Same batch, same optimiser step; reports images/s of each and the ratio.

    python benchmarks/bench_train.py [--batch 50] [--steps 20] [--repeats 5] [--device cuda]

The issue's target: the generated model within 5% of the hand-written one.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import archspec


class Block(nn.Module):
    def __init__(self, cin, cout, t, stride):
        super().__init__()
        mid = t * cin
        self.stride = stride
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class HandWritten(nn.Module):
    CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32)
        layers, cin = [], 32
        for t, c, n, s in self.CFG:
            for i in range(n):
                layers.append(Block(cin, c, t, s if i == 0 else 1))
                cin = c
        self.layers = nn.Sequential(*layers)
        self.conv2, self.bn2 = nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def images_per_s(model, batch, steps, device, channels_last):
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def run(n):
        for _ in range(n):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(3)
    start = time.perf_counter()
    run(steps)
    return batch * steps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    cl = device.type == "cuda"
    ours = archspec.build(archspec.load("mobilenetv2_cifar"), seed=0)
    theirs = HandWritten()
    n_ours = sum(q.numel() for q in ours.parameters())
    n_theirs = sum(q.numel() for q in theirs.parameters())
    assert n_ours == n_theirs, (n_ours, n_theirs)
    a, b = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both
        a.append(images_per_s(ours, args.batch, args.steps, device, cl))
        b.append(images_per_s(theirs, args.batch, args.steps, device, cl))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"device {device}, batch {args.batch}, {n_ours:,} parameters, "
          f"{torch.get_num_threads()} threads")
    print(f"generated    {ma:8.1f} images/s (median of {args.repeats})")
    print(f"hand-written {mb:8.1f} images/s")
    verdict = "ok: not more than 5% slower" if ma / mb >= 0.95 else "more than 5% slower"
    print(f"ratio        {ma / mb:8.3f}  ({verdict})")


if __name__ == "__main__":
    main()
