"""Detection and segmentation heads: blocks of a spec's `heads:` section, each reading the
named taps of its `from` and producing named outputs (docs/heads.md).

A head's lowering takes the builder, the tuple of tap nodes and its fields, and returns
``{output name: node}``. The heads follow the papers and torchvision's reference models:
SSDLite (MobileNetV2 Sec. 6.2, MobileNetV3 Sec. 6.3; torchvision ssdlite.py), LR-ASPP
(MobileNetV3 Sec. 6.4, Fig. 10; torchvision lraspp.py) and DeepLabv3's ASPP head
(MobileNetV2 Sec. 6.3; torchvision deeplabv3.py ``DeepLabHead``), whose `rates: []` is
MobileNetV3's R-ASPP. Heads are not width-scaled.
"""
from __future__ import annotations

from dataclasses import dataclass

from .fields import DROPOUT, K, NL, Field
from .registry import BLOCKS

HEAD_BLOCKS: dict[str, tuple[str, ...]] = {}
"""Head block name -> the names of its outputs."""


@dataclass(frozen=True)
class IntList(Field):
    """Field type: a list of whole numbers (atrous rates, extra-layer widths, a window);
    ``minimum`` / ``maximum`` bound each item, ``items`` the length."""

    items: tuple[int, int] = (0, 16)

    def schema(self) -> dict:
        item = {"type": "integer", **self._bounds()}
        return {"type": ["array", "null"], "items": item, "minItems": self.items[0],
                "maxItems": self.items[1]}

    def type_text(self, choices: bool = True) -> str:
        low, high = self.items
        count = f"{low}" if low == high else f"{low}-{high}"
        return f"list of {count} ints in [{self.minimum}, {self.maximum}]"

    def mismatch(self, value) -> str:
        if value is None or (isinstance(value, tuple) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)):
            return ""
        return f"default {value!r} is not a tuple of ints"


CLASSES = Field("classes", int, None, "classes predicted (default: the spec's `classes`)",
                minimum=1, maximum=1_000_000)
BN_EPS = Field("bn_eps", float, None, "the head's batch norm epsilon (default: the spec's "
               "`bn.eps`)", exclusive_minimum=0, maximum=1)
BN_MOMENTUM = Field("bn_momentum", float, None, "the head's batch norm momentum (default: "
                    "the spec's `bn.momentum`)", exclusive_minimum=0, maximum=1)
FILTERS = Field("filters", int, 256, "the head's filters F", minimum=1, maximum=100000)
UPSAMPLE = Field("upsample", bool, True, "bilinear resize of the logits to the input size, "
                 "as torchvision's `out` (`false`: logits at the feature map's size)")
ANCHORS = Field("anchors", int, 6, "anchors (default boxes) per location of each feature "
                "map: 2 + 2 x the aspect ratios (torchvision's [2, 3]: 6)",
                minimum=1, maximum=1000)
FIRST_ANCHORS = Field("first_anchors", int, None, "anchors per location of the first map "
                      "(TF Object Detection API's reduce_boxes_in_lowest_layer: 3; default: "
                      "`anchors`)", minimum=1, maximum=1000)
EXTRA = IntList("extra", tuple, (512, 256, 256, 128), "widths c of the extra layers after the last "
                "tap, each a 1x1 conv to c/2, a 3x3 depthwise conv with stride 2 and a 1x1 "
                "conv to c, each with BN and `nl`", minimum=2, maximum=100000, items=(0, 16))
RATES = IntList("rates", tuple, (12, 24, 36), "atrous rates of ASPP's 3x3 branches (`[]`: "
                "MobileNetV3's R-ASPP, a 1x1 conv and the image pooling only)",
                minimum=1, maximum=256, items=(0, 16))
POOL_K = IntList("pool_k", tuple, None, "the gate's average pooling window [kh, kw] (MobileNetV3 "
                 "Fig. 10: [49, 49]); none: global pooling (torchvision)",
                 minimum=1, maximum=8192, items=(2, 2))
POOL_S = IntList("pool_s", tuple, None, "the gate's pooling stride [sh, sw] (Fig. 10: [16, 20]; "
                 "default: the window)", minimum=1, maximum=8192, items=(2, 2))
HEAD_CONV = Field("head_conv", bool, True, "a 3x3 conv + BN + ReLU between ASPP and the "
                  "classifier (torchvision's DeepLabHead)")
POOLING = Field("pooling", bool, True, "ASPP's image pooling branch (global pool, 1x1 conv, "
                "BN, ReLU, upsampled)")


def head(name: str, *, outputs: tuple[str, ...], fields, aliases=(), check=None):
    """Register a head block (a block of `heads:`) with the names of its outputs."""
    def deco(lower):
        BLOCKS.register(name, fields=(*fields, BN_EPS, BN_MOMENTUM), aliases=aliases,
                        check=check)(lower)
        HEAD_BLOCKS[name] = outputs
        return lower
    return deco


def _bn(b, f: dict) -> None:
    """The head's batch norm settings on the builder (the spec's unless the row sets them)."""
    b.bn_eps = f.get("bn_eps") or b.bn_eps
    b.bn_momentum = f.get("bn_momentum") or b.bn_momentum


def _classes(b, f: dict) -> int:
    return f.get("classes") or b.graph.meta["classes"]


def _to_input(b, x: str, f: dict) -> str:
    """The logits resized to the input's size when `upsample` asks for it."""
    size = tuple(b.graph.input_shape[1:])
    return b.resize("upsample", x, size) if f["upsample"] and b.shape(x)[1:] != size else x


def _taps(inputs, count: int, name: str) -> tuple:
    """The head's inputs, when `from` names as many taps as it reads."""
    if len(inputs) != count:
        raise ValueError(f"{name} reads {count} taps, `from` names {len(inputs)}")
    return tuple(inputs)


# ---- SSDLite ----------------------------------------------------------------------------
def _extra_layer(b, local: str, x: str, c: int, nl) -> str:
    """1x1 conv to c/2, 3x3 depthwise stride 2, 1x1 conv to c; each + BN + nl."""
    half = c // 2
    y = b.conv_bn_act(f"{local}.0", x, half, nl=nl)
    y = b.conv_bn_act(f"{local}.1", y, half, k=3, s=2, groups=half, nl=nl)
    return b.conv_bn_act(f"{local}.2", y, c, nl=nl)


def _predictions(b, local: str, maps, per_anchor: int, f: dict) -> str:
    """On every map a k x k depthwise conv + BN + nl and a biased 1x1 conv to
    anchors x per_anchor, flattened to (H W anchors, per_anchor) and concatenated."""
    parts = []
    for j, m in enumerate(maps):
        c = b.channels(m)
        anchors = f["first_anchors"] or f["anchors"] if j == 0 else f["anchors"]
        y = b.conv_bn_act(f"{local}.{j}.dw", m, c, k=f["k"], groups=c, nl=f["nl"])
        y = b.conv(f"{local}.{j}.pw", y, anchors * per_anchor, bias=True)
        parts.append(b.anchor_flatten(f"{local}.{j}.flat", y, per_anchor))
    return b.concat(f"{local}.concat", parts) if len(parts) > 1 else parts[0]


@head("ssdlite", outputs=("bbox_regression", "cls_logits"),
      fields=(CLASSES, ANCHORS, FIRST_ANCHORS, EXTRA,
              K(doc="kernel of the prediction layers' depthwise conv"),
              NL(default="relu6", doc="nonlinearity of the extra and prediction layers")))
def ssdlite(b, inputs, f):
    """SSDLite (MobileNetV2 Sec. 6.2; MobileNetV3 Sec. 6.3; torchvision ssdlite.py): SSD's
    prediction layers with every regular conv replaced by a depthwise + 1x1 pair, on each
    tap of `from` (C4, C5) and on `extra` layers grown from the last tap.

    Extra layer c: 1x1 conv to c/2, 3x3 depthwise stride 2, 1x1 conv to c, each + BN + `nl`.
    Classification, then box regression, on every map: k x k depthwise + BN + `nl`, a
    biased 1x1 conv to anchors x classes (x 4), flattened per anchor and concatenated over
    the maps: outputs `cls_logits` (anchors, classes) and `bbox_regression` (anchors, 4),
    what torchvision's SSDLiteHead returns before decoding."""
    _bn(b, f)
    maps = list(inputs)
    for i, c in enumerate(f["extra"]):
        maps.append(_extra_layer(b, f"extra.{i}", maps[-1], int(c), f["nl"]))
    cls = _predictions(b, "classification", maps, _classes(b, f), f)
    box = _predictions(b, "regression", maps, 4, f)
    return {"bbox_regression": box, "cls_logits": cls}


# ---- LR-ASPP ----------------------------------------------------------------------------
def _gate(b, high: str, f: dict, size) -> str:
    """Average pooling (global, or `pool_k` / `pool_s`), 1x1 conv to F, sigmoid, resized to
    the branch it gates when the pooling leaves more than one position."""
    if f["pool_k"]:
        g = b.avg_pool("scale.pool", high, tuple(f["pool_k"]), tuple(f["pool_s"] or f["pool_k"]))
    else:
        g = b.pool("scale.pool", high)
    g = b.conv("scale.conv", g, f["filters"])
    g = b.act("scale.sigmoid", g, "sigmoid")
    return g if b.shape(g)[1:] == (1, 1) else b.resize("scale.resize", g, size)


@head("lraspp", outputs=("out",),
      fields=(CLASSES, FILTERS(default=128, doc="filters F of the 1x1 branch and the gate"),
              POOL_K, POOL_S, UPSAMPLE))
def lraspp(b, inputs, f):
    """Lite R-ASPP (MobileNetV3 Sec. 6.4, Fig. 10; torchvision lraspp.py `LRASPPHead`),
    reading `from: [low, high]` (stride 8 and the last features): on `high` a 1x1 conv to
    F + BN + ReLU, gated by a sigmoid of a 1x1 conv (no BN) on an average pooling of `high`
    (global as torchvision; `pool_k` 49x49 with `pool_s` (16, 20) as Fig. 10), bilinearly
    resized to `low`'s size; a biased 1x1 classifier on each of `low` and the gated
    branch, added; bilinearly resized to the input (`upsample`)."""
    _bn(b, f)
    low, high = _taps(inputs, 2, "lraspp")
    x = b.conv_bn_act("cbr", high, f["filters"], nl="relu")
    x = b.mul("scale.mul", x, _gate(b, high, f, b.shape(x)[1:]))
    x = b.resize("resize", x, b.shape(low)[1:])
    classes = _classes(b, f)
    low = b.conv("low_classifier", low, classes, bias=True)
    x = b.conv("high_classifier", x, classes, bias=True)
    return {"out": _to_input(b, b.add("add", low, x), f)}


# ---- DeepLabv3 / R-ASPP -----------------------------------------------------------------
def _aspp(b, x: str, f: dict) -> str:
    """ASPP: a 1x1 branch, a 3x3 branch per atrous rate, the image pooling branch, each to
    F + BN + ReLU; concatenated; a 1x1 projection to F + BN + ReLU, dropout."""
    F = f["filters"]
    branches = [b.conv_bn_act("aspp.0", x, F, nl="relu")]
    for i, rate in enumerate(f["rates"], 1):
        branches.append(b.conv_bn_act(f"aspp.{i}", x, F, k=3, d=int(rate), nl="relu"))
    if f["pooling"]:
        p = b.pool("aspp.pool.pool", x)
        p = b.conv_bn_act("aspp.pool", p, F, nl="relu")
        branches.append(b.resize("aspp.pool.resize", p, b.shape(x)[1:]))
    y = b.concat("aspp.concat", branches) if len(branches) > 1 else branches[0]
    y = b.conv_bn_act("aspp.project", y, F, nl="relu")
    return b.dropout("aspp.dropout", y, f["dropout"])


@head("deeplabv3", aliases=("aspp",), outputs=("out",),
      fields=(CLASSES, FILTERS, RATES, POOLING, HEAD_CONV,
              DROPOUT(default=0.5, doc="dropout after ASPP's projection"), UPSAMPLE))
def deeplabv3(b, inputs, f):
    """DeepLabv3 head (MobileNetV2 Sec. 6.3, Table 7; torchvision deeplabv3.py
    `DeepLabHead`) on one tap: ASPP -- a 1x1 conv, a 3x3 conv per atrous rate in `rates`,
    and the image pooling branch (global pool, 1x1 conv, resized back), each to F + BN +
    ReLU, concatenated and projected by a 1x1 conv to F + BN + ReLU, dropout --; then a
    3x3 conv to F + BN + ReLU (`head_conv`); a biased 1x1 classifier; bilinearly resized to
    the input (`upsample`). `rates: []` and `head_conv: false` is MobileNetV3's R-ASPP."""
    _bn(b, f)
    (x,) = _taps(inputs, 1, "deeplabv3")
    y = _aspp(b, x, f)
    if f["head_conv"]:
        y = b.conv_bn_act("conv", y, f["filters"], k=3, nl="relu")
    y = b.conv("classifier", y, _classes(b, f), bias=True)
    return {"out": _to_input(b, y, f)}
