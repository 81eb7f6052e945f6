"""ResNet's bottleneck and the max-pool of its stem (He et al. 2016, "Deep Residual Learning
for Image Recognition", Sec. 3-4, Table 1), as torchvision builds them
(torchvision/models/resnet.py: ``Bottleneck``, the stride on its 3x3 conv, "ResNet v1.5";
``maxpool``). ShuffleNetV2's stem uses the same max-pool."""
from __future__ import annotations

from .fields import C, K, NL, S, WIDTH, Field
from .registry import BLOCKS

MID = Field("mid", int, None, "width of the bottleneck's 1x1 and 3x3 convs (default c / 4: "
            "ResNet's expansion 4)", minimum=1, maximum=100000, scaled=True)


@BLOCKS.register("maxpool", aliases=("max_pool",),
                 fields=(K(doc="window size (odd): padding (k-1)/2 on each side"),
                         S(default=2)))
def maxpool(b, x, f):
    """Max pooling over k x k windows with stride `s`, padding (k-1)/2 (ResNet Table 1
    "3x3 max pool, stride 2"; ShuffleNetV2 Table 5 `MaxPool`)."""
    return b.max_pool("pool", x, f["k"], f["s"], (f["k"] - 1) // 2)


def _check_mid(f):
    if f.get("mid") is None and isinstance(f.get("c"), int) and f["c"] % 4:
        yield "c", f"c={f['c']} is not a multiple of 4 (the default mid is c / 4)", \
            "choose c divisible by 4 or give mid"


@BLOCKS.register("resnet_bottleneck", aliases=("res_bottleneck", "resnet_bneck"),
                 fields=(C(doc="output channels (ResNet Table 1: 4 x the inner width)"), S,
                         MID, NL(default="relu"), *WIDTH),
                 check=lambda f: list(_check_mid(f)))
def resnet_bottleneck(b, x, f):
    """ResNet bottleneck (Table 1, Fig. 5 right), torchvision's v1.5: 1x1 conv + BN + ReLU
    to `mid` (default c / 4), 3x3 conv with stride `s` + BN + ReLU, 1x1 conv + BN to `c`;
    the shortcut is the input when the shape is kept, else a 1x1 conv with stride `s` + BN
    (projection, option B); ReLU after the sum."""
    mid = f["mid"] if f.get("mid") else f["c"] // 4
    y = b.conv_bn_act("conv1", x, mid, nl=f["nl"])
    y = b.conv_bn_act("conv2", y, mid, k=3, s=f["s"], nl=f["nl"])
    y = b.conv_bn_act("conv3", y, f["c"])
    shortcut = x
    if f["s"] != 1 or b.channels(x) != f["c"]:
        shortcut = b.conv_bn_act("downsample", x, f["c"], s=f["s"])
    return b.act("act", b.add("add", y, shortcut), f["nl"])
