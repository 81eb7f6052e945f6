"""GhostNet's ghost bottleneck (Han et al. 2020, "GhostNet: More Features from Cheap
Operations", Sec. 3.1-3.3, Fig. 3, Table 1), as the official code builds it (timm
ghostnet.py, from huawei-noah's ghostnet_pytorch)."""
from __future__ import annotations

import math

from .fields import C, EXP, K, NL, S, SE, SE_RATIO, WIDTH, Field
from .registry import BLOCKS
from .se import SE_DIVISOR, SE_GATE, SE_NL, SE_OF, add_se, check_se_nl

RATIO = Field("ratio", int, 2, "ghost ratio s: a 1x1 conv makes ceil(width / s) intrinsic "
              "maps, cheap depthwise convs the s - 1 ghosts of each", minimum=2, maximum=64)
DW_K = Field("dw_k", int, 3, "kernel size d of the cheap depthwise conv of each ghost module "
             "(odd)", minimum=1, maximum=31, odd=True)


def ghost_module(b, local: str, x: str, out: int, ratio: int, dw_k: int, nl) -> str:
    """Ghost module (Sec. 3.1, Fig. 2b): a 1x1 conv + BN + nl to m = ceil(out / s)
    intrinsic maps, a dw_k x dw_k depthwise conv + BN + nl making s - 1 ghosts of each, the
    two concatenated and cut to `out` channels."""
    intrinsic = math.ceil(out / ratio)
    y = b.conv_bn_act(f"{local}.primary", x, intrinsic, nl=nl)
    ghosts = b.conv_bn_act(f"{local}.cheap", y, intrinsic * (ratio - 1), k=dw_k,
                           groups=intrinsic, nl=nl)
    y = b.concat(f"{local}.concat", [y, ghosts])
    return y if intrinsic * ratio == out else b.slice(f"{local}.slice", y, 0, out)


def _shortcut(b, x: str, f: dict) -> str:
    """The input itself when the shape is kept, else k x k depthwise with stride `s` + BN
    and a 1x1 conv + BN to `c` (the official code; the paper's Fig. 3 shows only the
    identity)."""
    cin = b.channels(x)
    if cin == f["c"] and f["s"] == 1:
        return x
    y = b.conv_bn_act("shortcut.dw", x, cin, k=f["k"], s=f["s"], groups=cin)
    return b.conv_bn_act("shortcut.pw", y, f["c"])


@BLOCKS.register("ghost", aliases=("ghost_bneck", "g_bneck", "ghost_bottleneck"),
                 fields=(EXP(doc="width of the expanding ghost module (Table 1 `#exp`)"), C, S,
                         K(doc="kernel of the stride-s depthwise conv and of the shortcut's"),
                         SE(doc="squeeze-excite before the projecting ghost module"),
                         SE_RATIO, SE_GATE, SE_NL, SE_OF, SE_DIVISOR(default=4), RATIO, DW_K,
                         NL(default="relu", doc="nonlinearity of the expanding ghost module"),
                         *WIDTH), check=check_se_nl)
def ghost_bottleneck(b, x, f):
    """Ghost bottleneck (GhostNet Fig. 3, Table 1 `G-bneck`): a ghost module expanding to
    `exp` channels with `nl`; at stride 2 a k x k depthwise conv with stride `s` + BN (no
    activation); SE where the table marks it (pool, 1x1 conv with bias + ReLU, 1x1 conv with
    bias + hard-sigmoid gate by default; squeeze width make_divisible(exp x se_ratio, 4)); a
    linear ghost module projecting to `c`; plus the shortcut: the input when the shape is
    kept, else a k x k depthwise conv with stride `s` + BN and a 1x1 conv + BN.

    Each ghost module is a 1x1 conv + BN to ceil(width / ratio) intrinsic maps and a
    dw_k x dw_k depthwise conv + BN making ratio - 1 ghosts of each, concatenated (and cut
    to the width when ratio does not divide it)."""
    hidden = f["exp"]
    y = ghost_module(b, "ghost1", x, hidden, f["ratio"], f["dw_k"], f["nl"])
    if f["s"] > 1:
        y = b.conv_bn_act("dw", y, hidden, k=f["k"], s=f["s"], groups=hidden)
    if f["se"]:
        y = add_se(b, "se", y, f, x, hidden)
    y = ghost_module(b, "ghost2", y, f["c"], f["ratio"], f["dw_k"], None)
    return b.add("add", _shortcut(b, x, f), y)
