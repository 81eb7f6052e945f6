"""Primitive operations of the graph IR, as typed payloads with shape inference.

A shape is a tuple of ints without the batch axis: ``(C, H, W)`` for feature maps and
``(F,)`` after flatten. ``infer`` checks its inputs and returns the output shape, raising
:class:`ShapeError` with a plain-words reason when the op cannot apply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

Shape = tuple[int, ...]

ACTIVATIONS = ("relu", "relu6", "hswish", "hsigmoid", "swish", "sigmoid")


class ShapeError(ValueError):
    """An op cannot be applied to the shapes it was given."""


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


@dataclass(frozen=True)
class Input:
    kind: ClassVar[str] = "input"
    shape: Shape

    def infer(self, shapes: list[Shape]) -> Shape:
        return self.shape


@dataclass(frozen=True)
class Conv2d:
    kind: ClassVar[str] = "conv2d"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    groups: int = 1
    dilation: int = 1
    bias: bool = False

    @property
    def padding(self) -> int:
        return (self.kernel - 1) // 2 * self.dilation

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "conv2d")
        if c != self.in_channels:
            raise ShapeError(f"conv2d expects {self.in_channels} input channels, got {c}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(f"groups={self.groups} must divide both in ({self.in_channels}) "
                             f"and out ({self.out_channels}) channels")
        if self.stride > min(h, w):
            raise ShapeError(f"stride {self.stride} is larger than the {h}x{w} feature map")
        span = self.dilation * (self.kernel - 1) + 1
        oh = (h + 2 * self.padding - span) // self.stride + 1
        ow = (w + 2 * self.padding - span) // self.stride + 1
        if oh < 1 or ow < 1:
            raise ShapeError(f"a {self.kernel}x{self.kernel} conv with stride {self.stride} "
                             f"does not fit a {h}x{w} feature map")
        return (self.out_channels, oh, ow)


@dataclass(frozen=True)
class BatchNorm:
    kind: ClassVar[str] = "batchnorm"
    channels: int

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = _one(shapes, "batchnorm")
        if shape[0] != self.channels:
            raise ShapeError(f"batchnorm over {self.channels} channels got {shape[0]}")
        return shape


@dataclass(frozen=True)
class Activation:
    kind: ClassVar[str] = "activation"
    fn: str

    def __post_init__(self):
        if self.fn not in ACTIVATIONS:
            raise ShapeError(f"unknown activation {self.fn!r}")

    def infer(self, shapes: list[Shape]) -> Shape:
        return _one(shapes, "activation")


@dataclass(frozen=True)
class Add:
    """Elementwise add. With ``partial`` the second input may have fewer channels; it is
    added to the first channels of the first input (ReXNet, MobileNeXt)."""

    kind: ClassVar[str] = "add"
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


@dataclass(frozen=True)
class Mul:
    """Channel-wise scaling: a feature map times a ``(C, 1, 1)`` gate (squeeze-excite)."""

    kind: ClassVar[str] = "mul"

    def infer(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 2:
            raise ShapeError(f"mul takes two inputs, got {len(shapes)}")
        x, g = shapes
        if len(x) != 3 or g != (x[0], 1, 1):
            raise ShapeError(f"mul scales a (C, H, W) map by a (C, 1, 1) gate, got {x}, {g}")
        return x


@dataclass(frozen=True)
class GlobalAvgPool:
    kind: ClassVar[str] = "global_pool"

    def infer(self, shapes: list[Shape]) -> Shape:
        c, _, _ = _one_map(shapes, "global pool")
        return (c, 1, 1)


@dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = _one(shapes, "flatten")
        size = 1
        for d in shape:
            size *= d
        return (size,)


@dataclass(frozen=True)
class Linear:
    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int
    bias: bool = True

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = _one(shapes, "linear")
        if shape != (self.in_features,):
            raise ShapeError(f"linear expects ({self.in_features},), got {shape}")
        return (self.out_features,)


@dataclass(frozen=True)
class Dropout:
    kind: ClassVar[str] = "dropout"
    p: float

    def infer(self, shapes: list[Shape]) -> Shape:
        return _one(shapes, "dropout")


@dataclass(frozen=True)
class Concat:
    """Concatenation along channels."""

    kind: ClassVar[str] = "concat"

    def infer(self, shapes: list[Shape]) -> Shape:
        if len(shapes) < 2 or any(len(s) != 3 or s[1:] != shapes[0][1:] for s in shapes):
            raise ShapeError(f"concat needs 2+ maps of equal spatial size, got {shapes}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])


@dataclass(frozen=True)
class Replicate:
    """The input's channels repeated cyclically up to ``out_channels`` (k-fold concat of the
    input with itself, k possibly fractional: the last copy is cut short)."""

    kind: ClassVar[str] = "replicate"
    out_channels: int

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "replicate")
        if self.out_channels < c:
            raise ShapeError(f"replicate to {self.out_channels} channels from {c} would shrink")
        return (self.out_channels, h, w)


@dataclass(frozen=True)
class Slice:
    """Channels ``start:stop`` of a feature map."""

    kind: ClassVar[str] = "slice"
    start: int
    stop: int

    def infer(self, shapes: list[Shape]) -> Shape:
        c, h, w = _one_map(shapes, "slice")
        if not 0 <= self.start < self.stop <= c:
            raise ShapeError(f"slice {self.start}:{self.stop} is outside 0:{c}")
        return (self.stop - self.start, h, w)


OPS = {cls.kind: cls for cls in (Input, Conv2d, BatchNorm, Activation, Add, Mul, GlobalAvgPool,
                                 Flatten, Linear, Dropout, Concat, Replicate, Slice)}
