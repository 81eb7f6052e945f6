"""Primitive operations of the graph IR: each op kind defined once, in one class.

A class holds everything the core knows about its kind: the fields (a frozen dataclass),
the shape rule ``infer``, the cost formula ``cost`` and the traits the memory models read
(:class:`Op`). Consumers outside the core (the lowerings, the latency model) keep one
handler per kind in an :class:`archspec.ir.dispatch.OpTable`.

A shape is a tuple of ints without the batch axis: ``(C, H, W)`` for feature maps and
``(F,)`` after flatten. ``infer`` checks its inputs and returns the output shape, raising
:class:`ShapeError` with a plain-words reason when the op cannot apply. ``cost`` returns
an :class:`OpCost` for one image from the input shapes and the output shape; the counting
conventions are in docs/conventions.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import CompileError
from .tensors import numel

Shape = tuple[int, ...]
BN_EPS, BN_MOMENTUM = 1e-5, 0.1   # torch's BatchNorm defaults; a spec's `bn` sets others
PAD_MODES = ("symmetric", "same")   # a conv's padding; a spec's top-level `padding`

ACTIVATIONS = ("relu", "relu6", "hswish", "hsigmoid", "swish", "sigmoid", "gelu", "elu",
               "softplus", "leaky_relu")
ACTIVATION_CONSTANTS = {"elu": {"alpha": 1.0}, "leaky_relu": {"negative_slope": 0.01},
                        "softplus": {"beta": 1.0, "threshold": 20.0}}
"""The fixed constants of the parametric activations: torch's defaults (nn.ELU,
nn.LeakyReLU, nn.Softplus); gelu is the exact erf form (nn.GELU(approximate="none"))."""


class ShapeError(ValueError):
    """An op cannot be applied to the shapes it was given."""


@dataclass(frozen=True)
class OpCost:
    params: int = 0       # learnable elements
    buffers: int = 0      # non-learnable state (BN running mean/var)
    madds: int = 0        # multiply-accumulates (conv, linear)
    elementwise: int = 0  # other arithmetic, one per output element touched


class Op:
    """The traits of an op kind, read by the memory models (all off unless a kind says so).
    ``kind``, ``infer`` and ``cost`` have no default: a kind without them is refused when
    :data:`OPS` is built."""

    kind: ClassVar[str]
    view: ClassVar[bool] = False
    """Its output re-views its input's buffer: it allocates nothing."""
    per_channel: ClassVar[bool] = False
    """One input, each channel computed from the same channel alone: it can run on a slice
    of the channels, over its input's buffer."""
    fresh_output: ClassVar[bool] = False
    """It computes a new tensor from its weights, never an alias of its input, so the op
    that reads it next may overwrite it."""
    inplace: ClassVar[bool] = False
    """It can overwrite its input's buffer with its output."""

    def scratch(self, ins: list[Shape]) -> int:
        """Elements of a temporary it makes from its input while it runs (none by default)."""
        return 0


def _one_map(shapes: list[Shape], what: str) -> Shape:
    if len(shapes) != 1:
        raise ShapeError(f"{what} takes one input, got {len(shapes)}")
    if len(shapes[0]) != 3:
        raise ShapeError(f"{what} needs a (C, H, W) feature map, got shape {shapes[0]}")
    return shapes[0]


def _one(shapes: list[Shape], what: str) -> Shape:
    if len(shapes) != 1:
        raise ShapeError(f"{what} takes one input, got {len(shapes)}")
    return shapes[0]


def _free(op, ins: list[Shape], out: Shape) -> OpCost:
    """No arithmetic: the op moves or views data."""
    return OpCost()


def _per_output(op, ins: list[Shape], out: Shape) -> OpCost:
    """One operation per output element."""
    return OpCost(elementwise=numel(out))


@dataclass(frozen=True)
class Input(Op):
    kind = "input"
    shape: Shape

    def infer(self, shapes: list[Shape]) -> Shape:
        return self.shape

    cost = _free


@dataclass(frozen=True)
class Conv2d(Op):
    kind = "conv2d"
    fresh_output = True
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    groups: int = 1
    dilation: int = 1
    bias: bool = False
    pad_mode: str = "symmetric"
    """``symmetric``: (k-1)/2 d on each side; ``same``: TensorFlow's "same", ceil(H/s) out,
    the odd pixel of the padding at the bottom/right (a spec's top-level ``padding``)."""

    @property
    def padding(self) -> int:
        """The symmetric padding on each side."""
        return (self.kernel - 1) // 2 * self.dilation

    def _same(self, size: int) -> tuple[int, int]:
        span = self.dilation * (self.kernel - 1) + 1
        total = max((-(-size // self.stride) - 1) * self.stride + span - size, 0)
        return total // 2, total - total // 2

    def pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) zero padding on an h x w input."""
        if self.pad_mode == "same":
            (top, bottom), (left, right) = self._same(h), self._same(w)
            return top, left, bottom, right
        return (self.padding,) * 4

    def scratch(self, ins: list[Shape]) -> int:
        """An asymmetric padding is a zero-padded copy of the input (torch: F.pad)."""
        c, h, w = ins[0]
        top, left, bottom, right = self.pads(h, w)
        if top == bottom == left == right:
            return 0
        return c * (h + top + bottom) * (w + left + right)

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "conv2d")
        if c != self.in_channels:
            raise ShapeError(f"conv2d expects {self.in_channels} input channels, got {c}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(f"groups={self.groups} must divide both in ({self.in_channels}) "
                             f"and out ({self.out_channels}) channels")
        if self.pad_mode not in PAD_MODES:
            raise ShapeError(f"padding {self.pad_mode!r} is not one of {', '.join(PAD_MODES)}")
        span = self.dilation * (self.kernel - 1) + 1
        top, left, bottom, right = self.pads(h, w)
        oh = (h + top + bottom - span) // self.stride + 1
        ow = (w + left + right - span) // self.stride + 1
        if oh < 1 or ow < 1:  # torch's rule: a stride beyond the padded map is fine
            raise ShapeError(f"a {self.kernel}x{self.kernel} conv with stride {self.stride} "
                             f"and padding ({top}, {left}, {bottom}, {right}) does not fit "
                             f"a {h}x{w} feature map")
        return (self.out_channels, oh, ow)

    def cost(self, ins: list[Shape], out: Shape) -> OpCost:
        """One MAdd per weight per output position: H_out W_out C_out (C_in / g) k k."""
        per_out = (self.in_channels // self.groups) * self.kernel * self.kernel
        weights = self.out_channels * per_out
        return OpCost(params=weights + (self.out_channels if self.bias else 0),
                      madds=numel(out) * per_out)


@dataclass(frozen=True)
class BatchNorm(Op):
    """``eps`` is added to the variance (inference and training); ``momentum`` is torch's
    running-statistics update rate (training only). Neither changes a cost."""

    kind = "batchnorm"
    per_channel = True
    fresh_output = True
    channels: int
    eps: float = BN_EPS
    momentum: float = BN_MOMENTUM

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = _one(shapes, "batchnorm")
        if shape[0] != self.channels:
            raise ShapeError(f"batchnorm over {self.channels} channels got {shape[0]}")
        return shape

    def cost(self, ins: list[Shape], out: Shape) -> OpCost:
        """gamma, beta learnable; running mean, var buffers; scale and shift when unfolded
        (no MAdds: folded into the conv)."""
        return OpCost(params=2 * self.channels, buffers=2 * self.channels,
                      elementwise=2 * numel(out))


@dataclass(frozen=True)
class Activation(Op):
    kind = "activation"
    per_channel = True
    inplace = True
    fn: str

    def __post_init__(self):
        if self.fn not in ACTIVATIONS:
            raise ShapeError(f"unknown activation {self.fn!r}")

    def infer(self, shapes: list[Shape]) -> Shape:
        return _one(shapes, "activation")

    cost = _per_output


@dataclass(frozen=True)
class Add(Op):
    """Elementwise add. With ``partial`` the second input may have fewer channels; it is
    added to the first channels of the first input (ReXNet, MobileNeXt)."""

    kind = "add"
    partial: bool = False

    def infer(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 2:
            raise ShapeError(f"add takes two inputs, got {len(shapes)}")
        a, b = shapes
        if a[1:] != b[1:]:
            raise ShapeError(f"add needs equal spatial sizes, got {a} and {b}")
        if a[0] != b[0] and not (self.partial and b[0] < a[0]):
            raise ShapeError(f"add needs equal channels, got {a[0]} and {b[0]}")
        return a

    def cost(self, ins: list[Shape], out: Shape) -> OpCost:
        """One per element of the second input (a partial add touches only those)."""
        return OpCost(elementwise=numel(ins[1]))


@dataclass(frozen=True)
class Mul(Op):
    """A feature map times a gate: a ``(C, 1, 1)`` gate scales each channel
    (squeeze-excite), a gate of the map's own shape multiplies element by element
    (LR-ASPP's upsampled gate)."""

    kind = "mul"

    def infer(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 2:
            raise ShapeError(f"mul takes two inputs, got {len(shapes)}")
        x, g = shapes
        if len(x) != 3 or g not in ((x[0], 1, 1), x):
            raise ShapeError(f"mul scales a (C, H, W) map by a (C, 1, 1) gate or a gate of "
                             f"the same shape, got {x}, {g}")
        return x

    cost = _per_output


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    kind = "global_pool"

    def infer(self, shapes: list[Shape]) -> Shape:
        c, _, _ = _one_map(shapes, "global pool")
        return (c, 1, 1)

    def cost(self, ins: list[Shape], out: Shape) -> OpCost:
        """One per input element summed."""
        return OpCost(elementwise=numel(ins[0]))


@dataclass(frozen=True)
class Flatten(Op):
    kind = "flatten"
    view = True

    def infer(self, shapes: list[Shape]) -> Shape:
        return (numel(_one(shapes, "flatten")),)

    cost = _free


@dataclass(frozen=True)
class Linear(Op):
    kind = "linear"
    fresh_output = True
    in_features: int
    out_features: int
    bias: bool = True

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = _one(shapes, "linear")
        if shape != (self.in_features,):
            raise ShapeError(f"linear expects ({self.in_features},), got {shape}")
        return (self.out_features,)

    def cost(self, ins: list[Shape], out: Shape) -> OpCost:
        """One MAdd per weight."""
        weights = self.in_features * self.out_features
        return OpCost(params=weights + (self.out_features if self.bias else 0), madds=weights)


@dataclass(frozen=True)
class Dropout(Op):
    """Inference: the identity (a view of its input)."""

    kind = "dropout"
    view = True
    p: float

    def infer(self, shapes: list[Shape]) -> Shape:
        return _one(shapes, "dropout")

    cost = _free


@dataclass(frozen=True)
class Concat(Op):
    """Concatenation along the first axis: channels of ``(C, H, W)`` maps of one spatial
    size, or rows of ``(rows, K)`` tables with one ``K`` (SSD's per-anchor predictions)."""

    kind = "concat"

    def infer(self, shapes: list[Shape]) -> Shape:
        if len(shapes) < 2:
            raise ShapeError(f"concat needs 2+ inputs, got {len(shapes)}")
        rest = shapes[0][1:]
        if len(shapes[0]) not in (2, 3) or any(s[1:] != rest or len(s) != len(shapes[0])
                                               for s in shapes):
            raise ShapeError("concat needs (C, H, W) maps of one spatial size or (rows, K) "
                             f"tables of one K, got {shapes}")
        return (sum(s[0] for s in shapes), *rest)

    cost = _free


@dataclass(frozen=True)
class Replicate(Op):
    """The input's channels repeated cyclically up to ``out_channels`` (k-fold concat of the
    input with itself, k possibly fractional: the last copy is cut short)."""

    kind = "replicate"
    out_channels: int

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "replicate")
        if self.out_channels < c:
            raise ShapeError(f"replicate to {self.out_channels} channels from {c} would shrink")
        return (self.out_channels, h, w)

    cost = _free


@dataclass(frozen=True)
class Slice(Op):
    """Channels ``start:stop`` of a feature map."""

    kind = "slice"
    view = True
    start: int
    stop: int

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "slice")
        if not 0 <= self.start < self.stop <= c:
            raise ShapeError(f"slice {self.start}:{self.stop} is outside 0:{c}")
        return (self.stop - self.start, h, w)

    cost = _free


def _pair(value, what: str) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                  for v in pair):
        raise ShapeError(f"{what} must be an int or an (h, w) pair of ints >= 0, got {value!r}")
    return pair


def _pooled(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Output length of a pooling window (torch's pooling_output_shape, dilation 1)."""
    out = (size + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1   # the last window must start inside the input or its left padding
    return out


def _read(size: int, k: int, s: int, p: int, out: int) -> int:
    """Input elements the windows of one axis read (padding and overhang read nothing)."""
    return sum(min(o * s - p + k, size) - max(o * s - p, 0) for o in range(out))


@dataclass(frozen=True)
class _Pool2d(Op):
    """A k_h x k_w window moved with stride (s_h, s_w) over a zero- (avg) or -inf- (max)
    padded map, as torch's nn.AvgPool2d / nn.MaxPool2d (dilation 1). An int sets both
    axes; the stride defaults to the kernel."""

    fresh_output = True
    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False

    def __post_init__(self):
        what = self.kind.replace("_", " ")
        object.__setattr__(self, "kernel", _pair(self.kernel, f"{what} kernel"))
        object.__setattr__(self, "stride", self.kernel if self.stride is None
                           else _pair(self.stride, f"{what} stride"))
        object.__setattr__(self, "padding", _pair(self.padding, f"{what} padding"))
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise ShapeError(f"{what} kernel {self.kernel} and stride {self.stride} must be "
                             ">= 1")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise ShapeError(f"{what} padding {self.padding} must be at most half the "
                             f"kernel {self.kernel}")

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, self.kind.replace("_", " "))
        out = tuple(_pooled(n, k, s, p, self.ceil_mode) for n, k, s, p in
                    zip((h, w), self.kernel, self.stride, self.padding))
        if min(out) < 1:
            raise ShapeError(f"a {self.kernel[0]}x{self.kernel[1]} {self.kind.replace('_', ' ')}"
                             f" window with padding {self.padding} does not fit a {h}x{w} "
                             "feature map")
        return (c, *out)

    def cost(self, ins: list[Shape], out: Shape) -> OpCost:
        """One per input element a window reads (summed or compared), an element read by
        two overlapping windows counting twice; padding is not read."""
        c, h, w = ins[0]
        rows = _read(h, self.kernel[0], self.stride[0], self.padding[0], out[1])
        cols = _read(w, self.kernel[1], self.stride[1], self.padding[1], out[2])
        return OpCost(elementwise=c * rows * cols)


@dataclass(frozen=True)
class AvgPool(_Pool2d):
    """Average pooling; ``count_include_pad`` divides by the window including its zero
    padding (torch's default) or by the input elements it covers."""

    kind = "avg_pool"
    count_include_pad: bool = True


@dataclass(frozen=True)
class MaxPool(_Pool2d):
    """Max pooling (ResNet's and ShuffleNetV2's stem: 3x3, stride 2, padding 1)."""

    kind = "max_pool"


@dataclass(frozen=True)
class Resize(Op):
    """Bilinear resampling of a map to ``size`` (H, W), torch's F.interpolate(mode=
    "bilinear", align_corners=False): half-pixel centres, edges clamped."""

    kind = "resize"
    fresh_output = True
    size: tuple[int, int]

    def __post_init__(self):
        object.__setattr__(self, "size", _pair(self.size, "resize size"))
        if min(self.size) < 1:
            raise ShapeError(f"resize size {self.size} must be >= 1")

    def infer(self, shapes: list[Shape]) -> Shape:
        c, _, _ = _one_map(shapes, "resize")
        return (c, *self.size)

    cost = _per_output


@dataclass(frozen=True)
class ChannelShuffle(Op):
    """ShuffleNet's channel shuffle: the channels as a (groups, C / groups) matrix,
    transposed (channel g * C/groups + i goes to i * groups + g)."""

    kind = "channel_shuffle"
    groups: int

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "channel shuffle")
        if self.groups < 1 or c % self.groups:
            raise ShapeError(f"channel shuffle: {self.groups} groups do not divide {c} "
                             "channels")
        return (c, h, w)

    cost = _free


@dataclass(frozen=True)
class AnchorFlatten(Op):
    """An SSD prediction map ``(A * K, H, W)`` as one row of ``K`` values per anchor,
    ``(H * W * A, K)``, rows ordered by position then anchor (torchvision's SSD head:
    view(N, A, K, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, K))."""

    kind = "anchor_flatten"
    per_anchor: int

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "anchor flatten")
        if self.per_anchor < 1 or c % self.per_anchor:
            raise ShapeError(f"anchor flatten: {c} channels are not a whole number of "
                             f"anchors of {self.per_anchor} values")
        return (h * w * (c // self.per_anchor), self.per_anchor)

    cost = _free


def _vocabulary(*classes: type) -> dict[str, type]:
    """Op kind -> class; a class without a kind, shape rule or cost formula, or a kind
    defined twice, is refused."""
    table: dict[str, type] = {}
    for cls in classes:
        lacks = [a for a in ("kind", "infer", "cost") if not hasattr(cls, a)]
        if lacks:
            raise TypeError(f"op class {cls.__name__} lacks {', '.join(lacks)}")
        if cls.kind in table:
            raise TypeError(f"op kind `{cls.kind}` defined twice "
                            f"({table[cls.kind].__name__}, {cls.__name__})")
        table[cls.kind] = cls
    return table


OPS = _vocabulary(Input, Conv2d, BatchNorm, Activation, Add, Mul, GlobalAvgPool, Flatten,
                  Linear, Dropout, Concat, Replicate, Slice, AvgPool, MaxPool, Resize,
                  ChannelShuffle, AnchorFlatten)


def op_class(node, consumer: str) -> type[Op]:
    """The vocabulary's class for ``node``'s op kind (its formula and traits); a kind
    outside :data:`OPS` is an error naming ``consumer`` and the node, never a guess."""
    try:
        return OPS[node.kind]
    except KeyError:
        raise CompileError(f"{consumer}: unknown op kind {node.kind!r} "
                           f"(node {node.name})") from None
