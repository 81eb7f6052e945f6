"""The blocks of MobileNetV2 and MobileNetV3: conv-BN-act, the inverted residual (with
optional squeeze-excite; MobileNetV3's bneck, its expansion an absolute size or a ratio of
the input), global pooling, dropout and the classifier."""
from __future__ import annotations

from ..ir.ops import ShapeError
from .convnl import NL_DW, NL_EXPAND, NL_PROJECT, checks, conv_nl, nl_check
from .fields import (BIAS, BN, C, D, DROPOUT, EXP, GROUPS, K, NL, RESIDUAL, S, SE, SE_RATIO, T,
                     WIDTH, Field)
from .registry import BLOCKS
from .se import SE_FIELDS, add_se, check_se_nl

KEEP_EXPAND = Field("keep_expand", bool, False, "`true`: the 1x1 expansion conv is built even "
                    "when it keeps the width (t = 1 with a conv: FBNet's `e1`)")
IR_NLS = (NL_EXPAND, NL_DW, NL_PROJECT)
IR_CHECK = checks(check_se_nl, nl_check(*IR_NLS))
NO_EXPAND_HINT = "remove `nl_expand`, or set `keep_expand: true` to build the expansion conv"


def _check_nl_expand(f):
    """`nl_expand` on a row whose t = 1 builds no expansion conv: it would be ignored."""
    if f.get("nl_expand") is not None and f.get("t") == 1 and not f.get("keep_expand"):
        yield ("nl_expand", "t = 1 builds no expansion conv, so `nl_expand` would apply to "
               "nothing", NO_EXPAND_HINT)


def residual_applies(f: dict, x_shape, y_shape, *, partial: bool = False) -> bool:
    """Auto: a shortcut when stride is 1 and shapes agree (with ``partial``: the output
    may be wider; ReXNet). ``residual: true`` insists (an error if it cannot apply),
    ``residual: false`` removes it."""
    same = x_shape[1:] == y_shape[1:] and (x_shape[0] <= y_shape[0] if partial
                                           else x_shape[0] == y_shape[0])
    fits = same and f.get("s", 1) == 1
    if f.get("residual") is True and not fits:
        raise ShapeError(f"residual: true, but the block maps {x_shape} to {y_shape}"
                         + ("" if f.get("s", 1) == 1 else f" with stride {f['s']}"))
    return fits and f.get("residual") is not False


def _check_groups(f):
    g = f.get("groups")
    if isinstance(g, int) and f["c"] % g:
        yield "groups", f"groups={g} does not divide c={f['c']}", "choose groups dividing c"


@BLOCKS.register("conv", aliases=("conv2d", "conv_bn_act"),
                 fields=(C, K, S, GROUPS, D, NL(doc="nonlinearity after the batch norm"), BN,
                         BIAS, *WIDTH),
                 check=lambda f: list(_check_groups(f)))
def conv(b, x, f):
    """Convolution, batch norm, activation (MobileNetV2 Table 2 `conv2d` rows; with
    `bn: false` the biased "conv2d 1x1, NBN" of MobileNetV3 Tables 1-2)."""
    groups = b.channels(x) if f["groups"] == "dw" else f["groups"]
    return b.conv_bn_act("", x, f["c"], k=f["k"], s=f["s"], groups=groups, nl=f["nl"],
                         d=f["d"], bn=f["bn"], bias=f["bias"])


@BLOCKS.register("ir", aliases=("bottleneck", "bneck", "mbconv", "inverted_residual"),
                 fields=(T, EXP, C, S, K(doc="depthwise kernel size (odd)"), D, NL, SE, SE_RATIO,
                         *SE_FIELDS, KEEP_EXPAND, *IR_NLS, RESIDUAL, *WIDTH),
                 one_of=(("t", "exp"),),
                 check=checks(IR_CHECK, lambda f: list(_check_nl_expand(f))))
def inverted_residual(b, x, f):
    """Inverted residual with linear bottleneck (MobileNetV2 Table 1): 1x1 expansion to
    `t` x input (or `exp`) channels, k x k depthwise, linear 1x1 projection, shortcut when
    shapes agree. With `exp`, `se` and per-row `nl` it is MobileNetV3's bneck (MobileNetV3
    Section 5.3, Tables 1-2): SE after the depthwise, by default squeezing to 1/4 of the
    expansion rounded to the divisor, with ReLU and a hard-sigmoid gate; with `se_of: input`,
    `se_nl: swish`, `se_gate: sigmoid`, `se_divisor: none` it is EfficientNet's MBConv
    (timm `InvertedResidual`, `DepthwiseSeparableConv` when t = 1).

    When the expansion keeps the width (t = 1) there is no expansion conv unless
    `keep_expand: true` (FBNet's `e1`). `nl_expand`, `nl_dw`, `nl_project` set the activation
    after each conv (default `nl`, `nl`, none; `nl_project: relu6` is MobileNetV2 Fig. 6's
    non-linear bottleneck)."""
    cin = b.channels(x)
    hidden = f["exp"] if f.get("exp") else b.expanded(x, f["t"])
    y = x
    if hidden != cin or f.get("keep_expand"):
        y = b.conv_bn_act("expand", y, hidden, nl=conv_nl(f, "expand", f["nl"]))
    elif f.get("nl_expand") is not None:
        raise ValueError(f"the expansion keeps the {cin} input channels, so there is no "
                         f"expansion conv for `nl_expand` to apply to ({NO_EXPAND_HINT})")
    y = b.conv_bn_act("dw", y, hidden, k=f["k"], s=f["s"], groups=hidden,
                      nl=conv_nl(f, "dw", f["nl"]), d=f["d"])
    return se_project_residual(b, x, y, f, hidden)


def se_project_residual(b, x: str, y: str, f: dict, hidden: int) -> str:
    """The tail MBConv and fused-MBConv share: SE on ``y`` (``hidden`` wide) if the row
    asks, the 1x1 projection to `c` + BN (+ `nl_project`), the shortcut from the block
    input ``x`` when shapes agree."""
    if f["se"]:
        y = add_se(b, "se", y, f, x, hidden)
    y = b.conv_bn_act("project", y, f["c"], nl=conv_nl(f, "project", None))
    if residual_applies(f, b.shape(x), b.shape(y)):
        y = b.add("add", x, y)
    return y


@BLOCKS.register("bneck_ratio", aliases=("mbv3_tf",),
                 fields=(T(doc="expansion: make_divisible(actual input x t, divisor)"), C, S,
                         K(doc="depthwise kernel size (odd)"), D, NL, SE, SE_RATIO, *SE_FIELDS,
                         *IR_NLS, RESIDUAL, *WIDTH), check=IR_CHECK)
def bneck_expansion_ratio(b, x, f):
    """MobileNetV3 bneck, its expansion a ratio `t` of the block's input (Tables 1-2).

    As the reference code writes the tables (TF-slim mobilenet_v3 `expand_input_by_factor`,
    timm `e<t>`), the expansion is the actual input width x t rounded to the divisor: under
    a width multiplier it follows the rounded input, as in the official models (MobileNetV3
    Tables 3 and 9). Otherwise the `bneck` above."""
    hidden = b.divisible(b.channels(x) * f["t"])
    return inverted_residual(b, x, {**f, "t": None, "exp": hidden})


@BLOCKS.register("pool", aliases=("avgpool", "global_pool"), fields=())
def pool(b, x, f):
    """Global average pooling (MobileNetV2 Table 2 `avgpool 7x7`, MobileNetV3 `pool`)."""
    return b.pool("pool", x)


@BLOCKS.register("dropout", fields=(DROPOUT,))
def dropout(b, x, f):
    """Dropout with probability `dropout` (no cost; identity at inference)."""
    return b.dropout("dropout", x, f["dropout"])


@BLOCKS.register("classifier", aliases=("fc", "linear"),
                 fields=(C(default=None, scaled=False,
                           doc="outputs (default: the spec's `classes`)"),
                         DROPOUT(default=0.0), BIAS(default=True, doc="bias of the linear layer")))
def classifier(b, x, f):
    """Flatten, dropout, fully connected layer to `c` outputs (default: the spec's
    classes); the final "conv2d 1x1, k" row of the papers' tables."""
    if len(b.shape(x)) != 1:
        x = b.flatten("flatten", x)
    x = b.dropout("dropout", x, f["dropout"])
    return b.linear("fc", x, f["c"], bias=f["bias"] is not False)
