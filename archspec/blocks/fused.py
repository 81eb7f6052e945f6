"""EfficientNetV2's fused-MBConv (Tan & Le 2021, "EfficientNetV2: Smaller Models and Faster
Training", Fig. 2, Table 4), as timm builds it (`EdgeResidual`)."""
from __future__ import annotations

from .convnl import NL_EXPAND, NL_PROJECT, checks, conv_nl, nl_check
from .core import se_project_residual
from .fields import C, K, NL, RESIDUAL, S, SE, SE_RATIO, T, WIDTH
from .registry import BLOCKS
from .se import SE_FIELDS, check_se_nl

FUSED_NLS = (NL_EXPAND(doc="nonlinearity after the k x k expansion conv (blank: `nl`; "
                           "`linear`: none)"), NL_PROJECT)


@BLOCKS.register("fused_mbconv", aliases=("fused_ir", "edge_residual", "er"),
                 fields=(T, C, S, K(doc="kernel of the fused expansion conv (odd)"), NL, SE,
                         SE_RATIO, *SE_FIELDS, *FUSED_NLS, RESIDUAL, *WIDTH),
                 check=checks(check_se_nl, nl_check(*FUSED_NLS)))
def fused_mbconv(b, x, f):
    """Fused-MBConv (EfficientNetV2 Fig. 2; timm `EdgeResidual`): the expansion 1x1 and the
    depthwise k x k of MBConv fused into one regular k x k conv with stride `s` to
    round(input x t) channels + BN + `nl`; SE as the SE fields say (EfficientNetV2: from the
    block input, `se_of: input`); linear 1x1 projection to `c` + BN; shortcut when shapes
    agree. The expansion conv is there for every t (timm's EdgeResidual)."""
    hidden = b.expanded(x, f["t"])
    y = b.conv_bn_act("expand", x, hidden, k=f["k"], s=f["s"],
                      nl=conv_nl(f, "expand", f["nl"]))
    return se_project_residual(b, x, y, f, hidden)
