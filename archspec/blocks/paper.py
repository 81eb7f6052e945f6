"""Blocks of the papers beyond MobileNetV2/V3: MobileNetV1's depthwise separable layer,
ReXNet's bottleneck, the replication-expansion bottlenecks of the replication note, and
MobileNetV2 with a second depthwise conv (MobileNeXt Table 5). The sandglass block and
MobileNeXt's ablation variants are in :mod:`archspec.blocks.mobilenext`."""
from __future__ import annotations

from ..vocab import nonlinearity
from .convnl import NL_DW, NL_EXPAND, NL_PROJECT, checks, conv_nl, nl_check
from .core import residual_applies
from .fields import C, K, NL, RESIDUAL, S, SE, SE_RATIO, T, WIDTH, Field, Nonlinearity
from .registry import BLOCKS
from .se import SE_FIELDS, add_se, check_se_nl

PW_NL = Field("pw_nl", Nonlinearity, None, "nonlinearity after the 1x1 conv (default: `nl`)")
REPLICATION_VARIANT = Field("variant", str, "a", "the replication note's variant (Fig. 1)",
                            choices=("a", "b", "c", "d"))


def _check_nl(key):
    def check(f):
        if f.get(key) is not None and nonlinearity(f[key])[0] is None:
            return [(key, f"unknown nonlinearity `{f[key]}`", nonlinearity(f[key])[1])]
        return []
    return check


@BLOCKS.register("dwsep", aliases=("depthwise_separable", "conv_dw"),
                 fields=(C, K, S, NL(default="relu", doc="nonlinearity after the depthwise conv"),
                         PW_NL, SE(doc="squeeze-excite between the depthwise and the 1x1 conv"),
                         SE_RATIO(doc="SE squeeze width as a fraction of the input (the "
                                      "depthwise conv's width)"), *SE_FIELDS, *WIDTH),
                 check=checks(_check_nl("pw_nl"), check_se_nl))
def depthwise_separable(b, x, f):
    """Depthwise separable layer (MobileNetV1 Table 1 `Conv dw` + `Conv 1x1` rows, Fig. 3):
    k x k depthwise conv with stride `s`, BN, `nl`; 1x1 conv to `c`, BN, `pw_nl` (default
    `nl`). ReXNet_plain (ReXNet Table 9) is RE after the depthwise and SW after the 1x1.

    With `se: true` it is PP-LCNet's block (timm `DepthwiseSeparableConv` with `pw_act`, arch
    `dsa`): SE on the depthwise output, squeezing the input width x `se_ratio` with the SE
    fields' gate, activation and rounding (LCNet: ReLU, hard-sigmoid, `se_divisor: none`).
    No shortcut."""
    cin = b.channels(x)
    pw_nl = nonlinearity(f["pw_nl"])[0] if f["pw_nl"] is not None else f["nl"]
    y = b.conv_bn_act("dw", x, cin, k=f["k"], s=f["s"], groups=cin, nl=f["nl"])
    if f.get("se"):
        y = add_se(b, "se", y, f, x, cin)
    return b.conv_bn_act("pw", y, f["c"], nl=pw_nl)


REXNET_NLS = (NL_EXPAND, NL_DW(doc="nonlinearity after the depthwise conv and SE (blank: "
                                   "ReLU6; `linear`: none)"), NL_PROJECT)


def _check_rexnet_se_ratio(f):
    """rexnetv1.py squeezes to channels // integer: a ratio that is not 1 / integer would be
    silently changed, so it is refused."""
    ratio = f.get("se_ratio")
    if ratio and abs(1 / ratio - round(1 / ratio)) > 1e-3 * (1 / ratio):
        yield ("se_ratio", f"se_ratio {ratio} is not 1 / an integer: rexnet_bneck squeezes "
               "to expansion // round(1 / se_ratio)", f"write {1 / max(1, round(1 / ratio)):.6g} "
               f"(1/{max(1, round(1 / ratio))}) or use the `ir` block")


@BLOCKS.register("rexnet_bneck", aliases=("rexnet_bottleneck",),
                 fields=(T, C(default=None, doc="output channels (blank: the spec's `schedule`)"),
                         S, K(doc="depthwise kernel size (odd)"), SE,
                         SE_RATIO(default=1 / 12,
                                  doc="SE squeeze: expansion // round(1 / se_ratio); "
                                      "1 / an integer"),
                         NL(default="swish", doc="nonlinearity after the expansion conv"),
                         *REXNET_NLS, RESIDUAL, *WIDTH),
                 check=checks(lambda f: list(_check_rexnet_se_ratio(f)), nl_check(*REXNET_NLS)))
def rexnet_bottleneck(b, x, f):
    """ReXNet inverted bottleneck (ReXNet Table 8, appendix C.1; clovaai rexnetv1.py
    `LinearBottleneck`): 1x1 expansion to t x input + BN + Swish-1 (none when t = 1),
    k x k depthwise + BN, SE where the table marks it (after the depthwise BN: pool, 1x1
    with bias to expansion // 12, BN, ReLU, 1x1 with bias, sigmoid), ReLU6, linear 1x1
    projection + BN. The shortcut is partial: when s = 1 and the output is at least as wide
    as the input, the input is added to the first input-width channels of the output.
    `c` left blank takes the spec's channel `schedule`.

    ReXNet Table 5's nonlinearity positions: `nl_expand` (default `nl`), `nl_dw` (the
    activation after the depthwise conv and SE; default ReLU6), `nl_project` (default none)."""
    cin = b.channels(x)
    hidden = b.expanded(x, f["t"])
    y = x
    if hidden != cin or f["t"] != 1:
        y = b.conv_bn_act("expand", y, hidden, nl=conv_nl(f, "expand", f["nl"]))
    y = b.conv_bn_act("dw", y, hidden, k=f["k"], s=f["s"], groups=hidden)
    if f["se"]:
        squeeze = hidden // round(1 / f["se_ratio"])  # rexnetv1.py: channels // se_ratio
        y = b.squeeze_excite("se", y, squeeze, inner="relu", gate="sigmoid", bn=True)
    y = b.act("act", y, conv_nl(f, "dw", "relu6"))
    y = b.conv_bn_act("project", y, f["c"], nl=conv_nl(f, "project", None))
    if residual_applies(f, b.shape(x), b.shape(y), partial=True):
        y = b.add("add", y, x, partial=b.channels(x) < b.channels(y))
    return y


@BLOCKS.register("rep_ir", aliases=("replication_bottleneck",),
                 fields=(T, C, S, K(doc="depthwise kernel size (odd)"), NL(default="relu"),
                         REPLICATION_VARIANT, RESIDUAL, *WIDTH))
def replication_bottleneck(b, x, f):
    """The MobileNetV2 bottleneck of the replication note (replication_expansion_blog,
    Fig. 1), as the CIFAR reference code (kuangliu/pytorch-cifar `Block`) builds it: the
    expansion is always present (also for t = 1) and a stride-1 block whose width changes
    gets a 1x1 conv + BN projection shortcut.

    variant a: 1x1 expansion conv + BN + nl, depthwise + BN + nl, linear 1x1 + BN.
    variant b: the expansion conv replaced by replication -- the input concatenated t times
    (t may be fractional; the last copy is cut short) -- and a BN with its own affine
    parameters. variant c: b without the BN after the last 1x1. variant d: b with the
    depthwise conv (on the narrow input, with the stride) before the replication."""
    cin, variant = b.channels(x), f["variant"]
    hidden = b.expanded(x, f["t"])
    y = x
    if variant == "d":
        y = b.conv_bn_act("dw", y, cin, k=f["k"], s=f["s"], groups=cin, nl=f["nl"])
    if variant == "a":
        y = b.conv_bn_act("expand", y, hidden, nl=f["nl"])
    else:
        y = b.replicate("expand.replicate", y, hidden)
        y = b.act("expand.act", b.bn("expand.bn", y), f["nl"])
    if variant != "d":
        y = b.conv_bn_act("dw", y, hidden, k=f["k"], s=f["s"], groups=hidden, nl=f["nl"])
    y = b.conv_bn_act("project", y, f["c"], bn=variant != "c", bias=False)
    if residual_applies(f, b.shape(x), b.shape(y)):
        return b.add("add", x, y)
    if f["s"] == 1 and f.get("residual") is not False and b.shape(x)[1:] == b.shape(y)[1:]:
        shortcut = b.conv_bn_act("shortcut", x, f["c"])
        return b.add("add", shortcut, y)
    return y


@BLOCKS.register("ir_2dw", aliases=("ir_dw2",),
                 fields=(T, C, S, K(doc="depthwise kernel size (odd)"), NL, RESIDUAL, *WIDTH))
def inverted_residual_2dw(b, x, f):
    """MobileNetV2 block with a second depthwise conv (MobileNeXt Table 5, "2 dwise
    convs, middle"): 1x1 expansion + BN + nl, an extra stride-1 k x k depthwise + BN + nl
    at the input resolution, the usual k x k depthwise with stride `s` + BN + nl, linear
    1x1 projection + BN. The paper does not state the placement or activation of the extra
    conv; this placement gives 334 M MAdds, the closest to the printed 340 M."""
    cin = b.channels(x)
    hidden = b.expanded(x, f["t"])
    y = x
    if hidden != cin:
        y = b.conv_bn_act("expand", y, hidden, nl=f["nl"])
    y = b.conv_bn_act("dw0", y, hidden, k=f["k"], groups=hidden, nl=f["nl"])
    y = b.conv_bn_act("dw", y, hidden, k=f["k"], s=f["s"], groups=hidden, nl=f["nl"])
    y = b.conv_bn_act("project", y, f["c"])
    if residual_applies(f, b.shape(x), b.shape(y)):
        y = b.add("add", x, y)
    return y
