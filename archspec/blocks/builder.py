"""What a block's lowering function gets: named helpers that add IR ops under the block's
hierarchical prefix (``stages.3.block1``)."""
from __future__ import annotations

from ..ir import ops
from ..ir.graph import Graph
from ..vocab import make_divisible


class BlockBuilder:
    def __init__(self, graph: Graph, prefix: str, stage: str, block_type: str, divisor: int = 8,
                 bn: tuple[float, float] = (ops.BN_EPS, ops.BN_MOMENTUM),
                 padding: str = "symmetric"):
        self.graph = graph
        self.padding = padding
        self.bn_eps, self.bn_momentum = bn
        self.prefix = prefix
        self.stage = stage
        self.block_type = block_type
        self.divisor = divisor

    def _add(self, local: str, op, inputs) -> str:
        name = f"{self.prefix}.{local}" if local else self.prefix
        return self.graph.add(name, op, inputs, block=self.prefix, stage=self.stage,
                              block_type=self.block_type)

    def shape(self, x: str):
        return self.graph[x].shape

    def channels(self, x: str) -> int:
        return self.graph[x].shape[0]

    def divisible(self, value: float) -> int:
        return make_divisible(value, self.divisor)

    def expanded(self, x: str, t: float) -> int:
        """Width of a t-fold expansion of ``x``: round(C x t), as the reference code does;
        a ValueError blaming ``t`` when that rounds to no channel."""
        hidden = int(round(self.channels(x) * t))
        if hidden < 1:
            raise ValueError(f"t = {t:g} expands the {self.channels(x)} input channels to "
                             f"round({self.channels(x)} x {t:g}) = {hidden} channels: `t` must be "
                             f"above 0.5 / {self.channels(x)} = {0.5 / self.channels(x):g}")
        return hidden

    @staticmethod
    def _join(local: str, leaf: str) -> str:
        return f"{local}.{leaf}" if local else leaf

    # ---- primitive ops ------------------------------------------------------------------
    def conv(self, local, x, out, k=1, s=1, groups=1, d=1, bias=False) -> str:
        op = ops.Conv2d(self.channels(x), out, k, s, groups, d, bias, self.padding)
        return self._add(local, op, [x])

    def bn(self, local, x) -> str:
        op = ops.BatchNorm(self.channels(x), self.bn_eps, self.bn_momentum)
        return self._add(local, op, [x])

    def act(self, local, x, nl: str | None) -> str:
        if nl in (None, "linear"):
            return x
        return self._add(local, ops.Activation(nl), [x])

    def add(self, local, a, b, partial=False) -> str:
        return self._add(local, ops.Add(partial), [a, b])

    def mul(self, local, x, gate) -> str:
        return self._add(local, ops.Mul(), [x, gate])

    def pool(self, local, x) -> str:
        return self._add(local, ops.GlobalAvgPool(), [x])

    def avg_pool(self, local, x, k, s=None, p=0, ceil_mode=False,
                 count_include_pad=True) -> str:
        """nn.AvgPool2d(k, s, p, ceil_mode, count_include_pad); k, s, p: int or (h, w)."""
        return self._add(local, ops.AvgPool(k, s, p, ceil_mode, count_include_pad), [x])

    def max_pool(self, local, x, k, s=None, p=0, ceil_mode=False) -> str:
        """nn.MaxPool2d(k, s, p, ceil_mode); k, s, p: int or (h, w)."""
        return self._add(local, ops.MaxPool(k, s, p, ceil_mode), [x])

    def resize(self, local, x, size) -> str:
        """Bilinear resize to ``size`` (H, W), align_corners=False."""
        return self._add(local, ops.Resize(size), [x])

    def channel_shuffle(self, local, x, groups) -> str:
        return self._add(local, ops.ChannelShuffle(groups), [x])

    def anchor_flatten(self, local, x, per_anchor) -> str:
        """(A * per_anchor, H, W) -> (H * W * A, per_anchor), as torchvision's SSD head."""
        return self._add(local, ops.AnchorFlatten(per_anchor), [x])

    def flatten(self, local, x) -> str:
        return self._add(local, ops.Flatten(), [x])

    def dropout(self, local, x, p: float) -> str:
        return self._add(local, ops.Dropout(float(p)), [x]) if p else x

    def linear(self, local, x, out, bias=True) -> str:
        return self._add(local, ops.Linear(self.shape(x)[0], out, bias), [x])

    def concat(self, local, xs) -> str:
        return self._add(local, ops.Concat(), list(xs))

    def replicate(self, local, x, out) -> str:
        return self._add(local, ops.Replicate(out), [x])

    def slice(self, local, x, start, stop) -> str:
        return self._add(local, ops.Slice(start, stop), [x])

    # ---- common groups ------------------------------------------------------------------
    def conv_bn_act(self, local, x, out, k=1, s=1, groups=1, nl=None, d=1, bn=True,
                    bias=None) -> str:
        """conv -> BN -> activation, named ``local.conv``, ``local.bn``, ``local.act``."""
        bias = (not bn) if bias is None else bias
        y = self.conv(self._join(local, "conv"), x, out, k, s, groups, d, bias)
        if bn:
            y = self.bn(self._join(local, "bn"), y)
        return self.act(self._join(local, "act"), y, nl)

    def squeeze_excite(self, local, x, squeeze, inner="relu", gate="hsigmoid", bn=False) -> str:
        """SE: global pool, 1x1 conv (bias) + act, 1x1 conv (bias) + gate, channel scale."""
        c = self.channels(x)
        s = self.pool(f"{local}.pool", x)
        s = self.conv(f"{local}.fc1", s, squeeze, bias=True)
        if bn:
            s = self.bn(f"{local}.bn", s)
        s = self.act(f"{local}.act", s, inner)
        s = self.conv(f"{local}.fc2", s, c, bias=True)
        s = self.act(f"{local}.gate", s, gate)
        return self.mul(f"{local}.scale", x, s)
