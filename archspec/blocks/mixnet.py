"""MixNet's inverted residual with mixed-kernel depthwise conv and grouped 1x1 convs (Tan &
Le 2019, "MixConv: Mixed Depthwise Convolutional Kernels", Sec. 3, Fig. 2), as timm builds it
(`MixedConv2d`, `_split_channels`): the channels are split into groups, the first taking the
remainder, each group has its own conv, and the outputs are concatenated."""
from __future__ import annotations

from .convnl import NL_DW, NL_EXPAND, NL_PROJECT, checks, conv_nl, nl_check
from .core import residual_applies
from .fields import C, K, NL, RESIDUAL, S, SE, SE_RATIO, T, WIDTH, Field
from .registry import BLOCKS
from .se import SE_FIELDS, add_se, check_se_nl

MIX = Field("mix", int, 1, "kernel groups of the depthwise conv: group i has kernel "
            "k + 2i (MixNet's `k3.5.7` is k: 3, mix: 3)", minimum=1, maximum=15)
EXPAND_SPLIT = Field("expand_split", int, 1, "the 1x1 expansion as this many convs on "
                     "channel groups (MixNet's `a1.1` is 2)", minimum=1, maximum=64)
PROJECT_SPLIT = Field("project_split", int, 1, "the 1x1 projection as this many convs on "
                      "channel groups (MixNet's `p1.1` is 2)", minimum=1, maximum=64)
MIX_NLS = (NL_EXPAND, NL_DW, NL_PROJECT)


def split_channels(channels: int, groups: int) -> list[int]:
    """Equal parts, the first taking the remainder (timm `_split_channels`)."""
    parts = [channels // groups] * groups
    parts[0] += channels - sum(parts)
    return parts


def mixed_conv(b, local: str, x: str, out: int, kernels: list[int], s: int = 1,
               depthwise: bool = False) -> str:
    """One conv per channel group (input and output split alike), concatenated; a plain
    conv when there is one group."""
    if len(kernels) == 1:
        return b.conv(f"{local}.conv", x, out, kernels[0], s, out if depthwise else 1)
    cin, parts, outs, start = b.channels(x), [], split_channels(out, len(kernels)), 0
    for i, (width, k) in enumerate(zip(split_channels(cin, len(kernels)), kernels)):
        part = b.slice(f"{local}.split{i}", x, start, start + width)
        parts.append(b.conv(f"{local}.conv{i}", part, outs[i], k, s,
                            outs[i] if depthwise else 1))
        start += width
    return b.concat(f"{local}.concat", parts)


def _mixed_bn_act(b, local, x, out, kernels, nl, s=1, depthwise=False) -> str:
    y = mixed_conv(b, local, x, out, kernels, s, depthwise)
    return b.act(f"{local}.act", b.bn(f"{local}.bn", y), nl)


def _check(f):
    k, mix = f.get("k") or 3, f.get("mix") or 1
    if k + 2 * (mix - 1) > 31:
        return [("mix", f"mix={mix} from k={k} reaches kernel {k + 2 * (mix - 1)}, above 31",
                 "use fewer groups or a smaller k")]
    return []


@BLOCKS.register("mix_ir", aliases=("mixconv", "mixnet_block"),
                 fields=(T, C, S, K(doc="kernel of the first depthwise group (odd)"), MIX,
                         EXPAND_SPLIT, PROJECT_SPLIT, NL, SE, SE_RATIO, *SE_FIELDS, *MIX_NLS,
                         RESIDUAL, *WIDTH),
                 check=checks(_check, check_se_nl, nl_check(*MIX_NLS)))
def mixnet_block(b, x, f):
    """MixNet inverted residual (MixConv Sec. 3, Fig. 2; timm `InvertedResidual` with
    `MixedConv2d`): the 1x1 expansion to round(input x t) as `expand_split` convs on equal
    channel groups + BN + `nl` (none when t = 1); the depthwise conv with stride `s` split
    into `mix` groups with kernels k, k + 2, ... + BN + `nl`; SE as the SE fields say; the
    linear 1x1 projection as `project_split` convs + BN; shortcut when shapes agree. Groups
    are equal, the first taking the remainder (timm `_split_channels`)."""
    cin = b.channels(x)
    hidden = b.expanded(x, f["t"])
    y = x
    if hidden != cin:
        y = _mixed_bn_act(b, "expand", y, hidden, [1] * f["expand_split"],
                          conv_nl(f, "expand", f["nl"]))
    kernels = [f["k"] + 2 * i for i in range(f["mix"])]
    y = _mixed_bn_act(b, "dw", y, hidden, kernels, conv_nl(f, "dw", f["nl"]), s=f["s"],
                      depthwise=True)
    if f["se"]:
        y = add_se(b, "se", y, f, x, hidden)
    y = _mixed_bn_act(b, "project", y, f["c"], [1] * f["project_split"],
                      conv_nl(f, "project", None))
    if residual_applies(f, b.shape(x), b.shape(y)):
        y = b.add("add", x, y)
    return y
