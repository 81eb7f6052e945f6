"""The networks a latency calibration measures: seeded random MobileNet-like IR graphs
(the motifs the blocks compile to; see :mod:`.calibrate` for the sampling plan) and
seeded random variants of the shipped specs. Both are rebuilt from their seeds, so a raw
measurement file names them by seed (and, since the record, keeps their IR: :mod:`.raw`).
"""
from __future__ import annotations

import random

from ..ir.graph import Graph
from ..ir.ops import (Activation, Add, BatchNorm, Concat, Conv2d, Dropout, Flatten,
                      GlobalAvgPool, Input, Linear, Mul, Replicate)

ACTS = ("relu", "relu6", "hswish", "swish")
# The version of the random networks' sampling plan (:func:`random_network`), recorded in
# raw files and profiles (``calibration.sampler``): 1 until 2026-12-04; 2 adds the ghost
# bottleneck (concats) and dilated 3x3 convs (DeepLab's). A seed draws the same network
# under the same version, so a check can rebuild the calibration networks of a profile
# made by an older one.
SAMPLER = 2


# ---- sampling plan: random networks --------------------------------------------------------
class _Net:
    def __init__(self, name: str, res: int, rng: random.Random):
        self.g = Graph(name, {"resolution": res, "channels": 3})
        self.rng = rng
        self.x = self.g.add("input", Input((3, res, res)))
        self.i = 0
        self.round = rng.choice((16, 16, 8, 8, 1))

    def ch(self, c: float) -> int:
        r = self.round if self.rng.random() < 0.8 else self.rng.choice((1, 8, 16))
        return max(r, int(round(c / r)) * r) if r > 1 else max(4, int(round(c)))

    def conv(self, x, cout, k=1, s=1, groups=1, act=None, bn=True, bias=False, block="",
             dilation=1):
        g = self.g
        cin = g[x].shape[0]
        n = f"{block}.c{self.i}"
        self.i += 1
        y = g.add(f"{n}.conv", Conv2d(cin, cout, k, s, groups, dilation, bias), [x],
                  block=block)
        if bn:
            y = g.add(f"{n}.bn", BatchNorm(cout), [y], block=block)
        if act:
            y = g.add(f"{n}.act", Activation(act), [y], block=block)
        return y

    def se(self, x, block, gate):
        g = self.g
        c = g[x].shape[0]
        p = g.add(f"{block}.se.pool", GlobalAvgPool(), [x], block=block)
        r = self.ch(c / 4)
        h = self.conv(p, r, bias=True, bn=self.rng.random() < 0.3, act="relu", block=block)
        gt = self.conv(h, c, bias=True, bn=False, act=gate, block=block)
        return g.add(f"{block}.se.scale", Mul(), [x, gt], block=block)

    def inverted(self, x, cout, s, block):
        rng, g = self.rng, self.g
        cin = g[x].shape[0]
        act = rng.choice(ACTS)
        t = rng.choice((1, 2, 3, 4, 6, 6))
        h = x if t == 1 else self.conv(x, self.ch(cin * t), act=act, block=block)
        k = rng.choice((3, 3, 5, 7))
        se = rng.random() < 0.35
        late = se and rng.random() < 0.4  # ReXNet: activation after SE
        c = g[h].shape[0]
        h = self.conv(h, c, k, s, c, act=None if late else rng.choice(("relu", "relu6",
                                                                        act)), block=block)
        if se:
            h = self.se(h, block, rng.choice(("hsigmoid", "sigmoid")))
        if late:
            h = g.add(f"{block}.act", Activation("relu6"), [h], block=block)
        y = self.conv(h, cout, block=block)
        if s == 1 and cout == cin:
            y = g.add(f"{block}.add", Add(), [y, x], block=block)
        elif s == 1 and cin < cout and rng.random() < 0.7:
            y = g.add(f"{block}.add", Add(partial=True), [y, x], block=block)
        return y

    def sandglass(self, x, cout, s, block):
        rng, g = self.rng, self.g
        cin = g[x].shape[0]
        h = self.conv(x, cin, 3, 1, cin, act="relu6", block=block)
        h = self.conv(h, self.ch(cin / rng.choice((2, 4, 6))), block=block)
        h = self.conv(h, cout, act="relu6", block=block)
        y = self.conv(h, cout, 3, s, cout, block=block)
        if s == 1 and cin == cout:
            y = g.add(f"{block}.add", Add(), [y, x],
                      block=block)
        return y

    def ghost_module(self, x, c, act, block):
        """GhostNet's ghost module: a 1x1 conv to half the width, a 3x3 depthwise conv
        of that, the two concatenated (channels that fill NCHWc blocks or not)."""
        g = self.g
        h = self.conv(x, max(2, c // 2), act=act, block=block)
        ghosts = self.conv(h, g[h].shape[0], 3, 1, g[h].shape[0], act=act, block=block)
        return g.add(f"{block}.concat{self.i}", Concat(), [h, ghosts], block=block)

    def ghost(self, x, cout, s, block):
        """GhostNet's ghost bottleneck: an expanding ghost module (+ a strided depthwise
        conv, + SE), a linear projecting one, the residual add where shapes allow."""
        rng, g = self.rng, self.g
        cin = g[x].shape[0]
        h = self.ghost_module(x, self.ch(cin * rng.choice((2, 3, 4, 6))),
                              rng.choice(("relu", "relu", "hswish")), block)
        c = g[h].shape[0]
        if s == 2:
            h = self.conv(h, c, rng.choice((3, 5)), 2, c, block=block)
        if rng.random() < 0.3:
            h = self.se(h, block, "hsigmoid")
        y = self.ghost_module(h, cout, None, block)
        if s == 1 and g[y].shape[0] == cin:
            y = g.add(f"{block}.add", Add(), [y, x], block=block)
        return y

    def dilated(self, x, cout, s, block):
        """A dilated 3x3 conv (DeepLab: the ASPP's full convs at rates up to past the
        map, the backbone's depthwise convs at output stride 16), stride 1: onnxruntime
        computes only the taps inside the input (latency.kernels.conv_taps)."""
        rng, g = self.rng, self.g
        cin = g[x].shape[0]
        d = rng.choice((2, 2, 4, 6, 12, 18, 24, 36))
        act = rng.choice(("relu", "relu", "relu6", "hswish"))
        if rng.random() < 0.4:
            return self.conv(x, cin, 3, 1, cin, act=act, block=block, dilation=d)
        return self.conv(x, cout, 3, 1, act=act, block=block, dilation=d)

    def replicated(self, x, cout, s, block):
        g = self.g
        cin = g[x].shape[0]
        c = cin * self.rng.choice((2, 3, 4, 6))
        h = g.add(f"{block}.rep", Replicate(c), [x], block=block)
        h = g.add(f"{block}.rep.bn", BatchNorm(c), [h], block=block)
        h = g.add(f"{block}.rep.act", Activation("relu"), [h], block=block)
        h = self.conv(h, c, 3, s, c, act="relu", block=block)
        return self.conv(h, cout, block=block)

    def plain(self, x, cout, s, block):
        rng = self.rng
        cin = self.g[x].shape[0]
        act = rng.choice(ACTS)
        if rng.random() < 0.5:   # MobileNetV1: depthwise + pointwise
            h = self.conv(x, cin, 3, s, cin, act=act, block=block)
            return self.conv(h, cout, act=act, block=block)
        groups = rng.choice((1, 1, 2, 4))
        if cin % groups or cout % groups:
            groups = 1
        return self.conv(x, cout, 3, s, groups, act=act, block=block)

    def head(self, x, classes):
        g, rng = self.g, self.rng
        if rng.random() < 0.5:   # MobileNetV2: 1x1 conv, pool, classifier
            x = self.conv(x, self.ch(g[x].shape[0] * rng.uniform(2, 6)),
                          act=rng.choice(ACTS), block="head")
            x = g.add("head.pool", GlobalAvgPool(), [x], block="head")
        else:                    # MobileNetV3: pool, 1x1 conv without BN, classifier
            x = g.add("head.pool", GlobalAvgPool(), [x], block="head")
            x = self.conv(x, self.ch(rng.uniform(256, 1600)), bias=True, bn=False,
                          act="hswish", block="head")
        x = g.add("head.flatten", Flatten(), [x], block="head")
        x = g.add("head.dropout", Dropout(0.2), [x], block="head")
        f = g[x].shape[0]
        g.outputs["output"] = g.add("head.fc", Linear(f, classes), [x], block="head")
        return g


def random_network(seed: int, sampler: int = SAMPLER) -> Graph:
    """One calibration network (the sampling plan in the module docstring), as version
    ``sampler`` of the plan draws it (:data:`SAMPLER`)."""
    if sampler not in (1, 2):
        raise ValueError(f"sampler {sampler!r}: 1 or 2 expected")
    rng = random.Random(seed)
    res = rng.choice(range(64, 257, 16))
    net = _Net(f"calib{seed}", res, rng)
    stem_stride = 1 if rng.random() < 0.15 else 2    # 1: CIFAR-style nets, large maps
    x = net.conv(net.x, net.ch(rng.uniform(8, 48)), 3, stem_stride, act=rng.choice(ACTS),
                 block="stem")
    c = float(net.g[x].shape[0])
    n_blocks = rng.randint(5, 16)
    downs = sorted(rng.sample(range(n_blocks), min(n_blocks, rng.randint(2, 5))))
    motifs = (net.inverted,) * 6 + (net.sandglass, net.replicated) + \
        ((net.ghost, net.dilated) if sampler >= 2 else ()) + (net.plain,) * 2
    for b in range(n_blocks):
        h = net.g[x].shape[1]
        s = 2 if b in downs and h >= 6 else 1
        if s == 2 or rng.random() < 0.3:
            c = min(c * rng.uniform(1.2, 2.0), 640)
        cout = net.ch(c) if rng.random() > 0.4 or s == 2 else net.g[x].shape[0]
        motif = rng.choice(motifs)
        x = motif(x, cout, s, f"b{b}")
    return net.head(x, rng.choice((10, 100, 1000)))


# ---- random variants of the shipped specs --------------------------------------------------
VARIANT_SEED = 50_000   # variant seeds: far from the validation sampler's (0 + spec index)
HOLDOUT_SEED = 70_000   # the calibration's own held-out variants: apart from both


def variant_networks(n: int, seed: int = 0, offset: int = VARIANT_SEED) -> list[Graph]:
    """``n`` random variants of the shipped specs (``sweep --random``'s sampler: width,
    resolution, expansion, alpha), spread evenly over the specs, seeded apart from the
    validation variants of ``benchmarks/latency_check.py`` (``offset``: VARIANT_SEED for
    calibration networks, HOLDOUT_SEED for the networks a calibration validates on).
    A variant its spec cannot take (a segmentation head's fixed pool window at a small
    resolution) is left out, so fewer than ``n`` may come back."""
    import math

    from ..analysis.sweep import random_variants, vary
    from ..errors import ArchspecError
    from ..spec import load
    from ..spec.loader import SHIPPED

    if n <= 0:
        return []
    specs = [load(p) for p in sorted(SHIPPED.glob("*.yaml"))]
    per = math.ceil(n / len(specs))
    drawn: list[tuple[int, int, Graph]] = []
    for i, s in enumerate(specs):
        for j, v in enumerate(random_variants(per, seed * 100_000 + offset + i, s)):
            try:
                drawn.append((j, i, vary(s, v).compile()))
            except ArchspecError:
                continue
    # interleave the specs so that any prefix covers them, in a seeded order per pass so
    # that a short prefix is not the alphabet's first families
    rank = [random.Random(seed * 100_000 + offset - 1 - j).sample(range(len(specs)),
                                                                   len(specs))
            for j in range(per)]
    return [g for _, _, g in sorted(drawn, key=lambda x: (x[0], rank[x[0]][x[1]]))][:n]


def calibration_graphs(networks: int, variants: int, seed: int,
                       sampler: int = SAMPLER) -> list[Graph]:
    """The calibration networks, in measuring order: the random motif networks (version
    ``sampler`` of the plan), then the spec variants (recorded in the raw file; rebuilt
    from the seeds only for a raw file that predates the record: version 1)."""
    return [random_network(seed * 100_000 + i, sampler) for i in range(networks)] + \
        variant_networks(variants, seed)


def holdout_networks(n: int, seed: int) -> list[Graph]:
    """The networks a calibration validates its profile on and never fits: ``n`` random
    variants of the shipped specs, seeded apart from the calibration variants and from
    ``benchmarks/latency_check.py``'s."""
    return variant_networks(n, seed, HOLDOUT_SEED)
