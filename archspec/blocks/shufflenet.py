"""ShuffleNetV2's unit (Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient
CNN Architecture Design", Sec. 4, Fig. 3c-d, Table 5), as torchvision builds it
(torchvision/models/shufflenetv2.py, ``InvertedResidual``)."""
from __future__ import annotations

from ..ir.ops import ShapeError
from .fields import C, K, NL, S, WIDTH
from .registry import BLOCKS


def _check_even(f):
    if isinstance(f.get("c"), int) and f["c"] % 2:
        yield "c", f"c={f['c']} is odd: the unit's two branches each make c / 2 channels", \
            "choose an even c"


def _branch(b, local: str, x: str, width: int, f: dict, expand: bool) -> str:
    """[1x1 conv + BN + nl], k x k depthwise with stride `s` + BN, 1x1 conv + BN + nl."""
    y = b.conv_bn_act(f"{local}.expand", x, width, nl=f["nl"]) if expand else x
    y = b.conv_bn_act(f"{local}.dw", y, b.channels(y), k=f["k"], s=f["s"],
                      groups=b.channels(y))
    return b.conv_bn_act(f"{local}.project", y, width, nl=f["nl"])


@BLOCKS.register("shuffle_unit", aliases=("shufflenetv2_unit", "shufflev2"),
                 fields=(C, S, K(doc="depthwise kernel size (odd)"),
                         NL(default="relu"), *WIDTH),
                 check=lambda f: list(_check_even(f)))
def shuffle_unit(b, x, f):
    """ShuffleNetV2 unit (Fig. 3c-d). At stride 1 (Fig. 3c) a channel split: the first
    half passes unchanged, the second goes through a 1x1 conv + BN + ReLU, a k x k
    depthwise conv + BN and a 1x1 conv + BN + ReLU; at stride 2 (Fig. 3d) there is no
    split: branch 1 is a k x k depthwise conv with stride 2 + BN and a 1x1 conv + BN + ReLU,
    branch 2 the three convs above with the depthwise at stride 2. Each branch makes
    c / 2 channels; the two are concatenated and their channels shuffled in 2 groups.
    Branch 1 is built first, as torchvision's module order."""
    cin, half = b.channels(x), f["c"] // 2
    if f["s"] == 1:
        if cin != f["c"]:
            raise ShapeError(f"a stride-1 unit keeps the width: input {cin} channels, "
                             f"c={f['c']}")
        left = b.slice("split.left", x, 0, cin // 2)
        right = _branch(b, "branch2", b.slice("split.right", x, cin // 2, cin), half, f,
                        True)
    else:
        left = _branch(b, "branch1", x, half, f, False)
        right = _branch(b, "branch2", x, half, f, True)
    y = b.concat("concat", [left, right])
    return b.channel_shuffle("shuffle", y, 2)
