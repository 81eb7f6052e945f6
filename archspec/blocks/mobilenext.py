"""MobileNeXt's sandglass block (Zhou et al. 2020, Table 1, eq. 2-4) as the authors'
released code builds it (rethinking_bottleneck_design, mnext.py `SGBlock`), and the block
variants of its ablation (Fig. 4 a-c, Table 10)."""
from __future__ import annotations

import math

from ..vocab import make_divisible
from .convnl import NL_DW1, NL_DW2, NL_EXPAND, NL_REDUCE, checks, conv_nl, nl_check
from .core import residual_applies
from .fields import C, K, NL, RESIDUAL, S, SE, SE_RATIO, T, WIDTH, Field
from .registry import BLOCKS
from .se import SE_FIELDS, add_se, check_se_nl

REDUCTION = T(doc="reduction ratio: the bottleneck is input // t (see `sandglass_hidden`)")
ALPHA = Field("alpha", float, 1.0, "identity tensor multiplier: the shortcut adds the first "
              "alpha x C channels (Table 7)", minimum=0, maximum=1)
SANDGLASS_VARIANT = Field("variant", str, "auto", "`full`: always the four convs of Table 1; "
                          "`auto`: the released code's per-position shapes",
                          choices=("auto", "full"))
SE_AT = Field("se_at", str, None, "where the SE goes (with `se: true`): `dw1` (default), "
              "after the first depthwise conv (on the block input where there is none), or "
              "`dw2`, on the residual branch's output before the shortcut (as SE-ResNet)",
              choices=("dw1", "dw2"))
SANDGLASS_NLS = (NL_DW1, NL_REDUCE, NL_EXPAND, NL_DW2)
DW2 = Field("dw2", bool, False, "a second stride-1 depthwise conv in the bottleneck (Fig. 4b)")


def sandglass_hidden(cin: int, cout: int, t: float) -> int:
    """The bottleneck width of mnext.py: input // t, but at least cout / 6 rounded up and
    then to a multiple of 16 (the check uses 6 whatever t is)."""
    hidden = int(cin // t)
    if hidden < cout / 6.0:
        hidden = make_divisible(math.ceil(cout / 6.0), 16)
    return hidden


def _identity_channels(channels: int, alpha: float) -> int:
    """mnext.py adds x to the first C // identity_div channels, identity_div = 1 / alpha."""
    return channels // round(1 / alpha)


def _check_alpha(f):
    if f.get("alpha") is not None and f["alpha"] <= 0:
        return [("alpha", "the identity tensor multiplier must be above 0",
                 "use 1, 0.5, 0.3333 or 0.1667 (Table 7)")]
    return []


def _check_se_at(f):
    if f.get("se_at") is not None and not f.get("se"):
        return [("se_at", "`se_at` places a squeeze-excite, but the row has no `se`",
                 "add `se: true`, or remove `se_at`")]
    return []


def _identity(b, x, y, f):
    """Shortcut when shapes agree (MobileNeXt Sec. 3.3); only the first alpha x C channels
    are added (the identity tensor multiplier, Sec. 3.4, Table 7)."""
    if not residual_applies(f, b.shape(x), b.shape(y)):
        return y
    alpha = f["alpha"] if f["alpha"] is not None else 1.0
    keep = _identity_channels(b.channels(x), alpha)
    if keep >= b.channels(x):
        return b.add("add", x, y)
    return b.add("add", y, b.slice("identity", x, 0, keep), partial=True)


@BLOCKS.register("sandglass", aliases=("sgblock", "sg"),
                 fields=(REDUCTION, C, S, K, NL, ALPHA, SANDGLASS_VARIANT,
                         SE(doc="squeeze-excite (MobileNeXt Table 6, MobileNeXt†), at `se_at`"),
                         SE_RATIO(doc="SE squeeze width as a fraction of the width it gates "
                                      "(`se_of: exp`) or of the block input"),
                         *SE_FIELDS, SE_AT, *SANDGLASS_NLS, RESIDUAL, *WIDTH),
                 check=checks(_check_alpha, _check_se_at, check_se_nl,
                              nl_check(*SANDGLASS_NLS)))
def sandglass(b, x, f):
    """Sandglass block (MobileNeXt Table 1, eq. 2-4): k x k depthwise + BN + ReLU6 on the
    wide input, linear 1x1 reduction by t + BN, 1x1 expansion + BN + ReLU6, linear k x k
    depthwise with stride `s` + BN; shortcut only when input and output shapes agree, adding
    the first alpha x C channels (`alpha`, Table 7). The reduction width is the released
    code's (see `sandglass_hidden`).

    `variant: full` always builds the four convs (paper Table 1). `variant: auto` follows
    the released code's per-position shapes: where the width changes, the first depthwise
    is dropped, and at stride 1 the second one too (pw + pw only).

    `se: true` adds squeeze-excite (MobileNeXt Table 6's MobileNeXt†; the paper does not
    place it): by default after the first depthwise conv, on the wide input (`se_at: dw1`; a
    block without that conv gates its input), or on the residual branch's output before the
    shortcut, as the SE paper it cites does (`se_at: dw2`).
    `nl_dw1`, `nl_reduce`, `nl_expand`, `nl_dw2` set the activation after each conv
    (default `nl`, none, `nl`, none; Sec. 4.4's ReLU6 on the last conv is `nl_dw2: relu6`)."""
    cin, cout = b.channels(x), f["c"]
    hidden = sandglass_hidden(cin, cout, f["t"])
    full = f["variant"] == "full" or cin == cout
    y = x
    if full:
        y = b.conv_bn_act("dw1", y, cin, k=f["k"], groups=cin, nl=conv_nl(f, "dw1", f["nl"]))
    if f.get("se") and f.get("se_at") in (None, "dw1"):
        y = add_se(b, "se", y, f, x, cin)
    y = b.conv_bn_act("reduce", y, hidden, nl=conv_nl(f, "reduce", None))
    y = b.conv_bn_act("expand", y, cout, nl=conv_nl(f, "expand", f["nl"]))
    if full or f["s"] != 1:
        y = b.conv_bn_act("dw2", y, cout, k=f["k"], s=f["s"], groups=cout,
                          nl=conv_nl(f, "dw2", None))
    if f.get("se") and f.get("se_at") == "dw2":
        y = add_se(b, "se", y, f, x, cout)
    return _identity(b, x, y, f)


@BLOCKS.register("classic_dw", aliases=("dw_bottleneck",),
                 fields=(REDUCTION, C, S, K, NL, DW2, RESIDUAL, *WIDTH))
def classic_bottleneck_dw(b, x, f):
    """Classic bottleneck with depthwise convs (MobileNeXt Fig. 4a/4b, Table 10): 1x1
    reduction by t + BN + ReLU6, k x k depthwise with stride `s` + BN + ReLU6 in the
    bottleneck, linear 1x1 expansion + BN; shortcut between the wide ends when shapes agree.
    `dw2: true` (Fig. 4b) adds a second stride-1 depthwise + BN + ReLU6 in the bottleneck.
    The reduction width follows the sandglass rounding; the figure gives no activations,
    so ReLU6 follows every conv but the last."""
    cin, cout = b.channels(x), f["c"]
    hidden = sandglass_hidden(cin, cout, f["t"])
    y = b.conv_bn_act("reduce", x, hidden, nl=f["nl"])
    y = b.conv_bn_act("dw", y, hidden, k=f["k"], s=f["s"], groups=hidden, nl=f["nl"])
    if f["dw2"]:
        y = b.conv_bn_act("dw2", y, hidden, k=f["k"], groups=hidden, nl=f["nl"])
    y = b.conv_bn_act("expand", y, cout)
    if residual_applies(f, b.shape(x), b.shape(y)):
        y = b.add("add", x, y)
    return y


@BLOCKS.register("sandglass_swapped", aliases=("ir_dw_ends",),
                 fields=(T, C, S, K, NL, RESIDUAL, *WIDTH))
def sandglass_swapped(b, x, f):
    """The sandglass block with its two 1x1 convs swapped (MobileNeXt Fig. 4c, Table 10):
    an inverted residual whose depthwise convs sit at the narrow ends -- k x k depthwise
    with stride `s` + BN + ReLU6 on the input, 1x1 expansion by t + BN + ReLU6, linear 1x1
    projection + BN, linear k x k depthwise + BN; shortcut when shapes agree. The figure
    does not place the stride; on the first depthwise the MobileNetV2 table costs 270 M
    MAdds, on the last 360 M (Table 10 prints 300 M)."""
    cin, cout = b.channels(x), f["c"]
    hidden = b.expanded(x, f["t"])
    y = b.conv_bn_act("dw1", x, cin, k=f["k"], s=f["s"], groups=cin, nl=f["nl"])
    y = b.conv_bn_act("expand", y, hidden, nl=f["nl"])
    y = b.conv_bn_act("project", y, cout)
    y = b.conv_bn_act("dw2", y, cout, k=f["k"], groups=cout)
    if residual_applies(f, b.shape(x), b.shape(y)):
        y = b.add("add", x, y)
    return y
