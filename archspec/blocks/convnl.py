"""Per-conv nonlinearity inside a block, for the papers' ablations: one `nl_<conv>` field
per conv of a block (`nl_expand`, `nl_dw`, `nl_project`, ...), each naming the activation
after that conv's batch norm. Blank keeps the block's own rule (`nl` after each conv but the
last, none after the last); `linear` removes one. MobileNetV2 Fig. 6's non-linear bottleneck
is `nl_project: relu6`, MobileNeXt's ReLU6 on the last conv (Sec. 4.4) `nl_dw2: relu6`,
ReXNet Table 5's positions `nl_expand` / `nl_dw` / `nl_project` of `rexnet_bneck`."""
from __future__ import annotations

from ..vocab import nonlinearity
from .fields import Field, Nonlinearity


def _nl_field(conv: str, what: str, note: str = "") -> Field:
    return Field(f"nl_{conv}", Nonlinearity, None, f"nonlinearity after the {what} "
                 f"(blank: the block's rule; `linear`: none{note})")


NL_EXPAND = _nl_field("expand", "1x1 expansion conv")
NL_DW = _nl_field("dw", "depthwise conv")
NL_PROJECT = _nl_field("project", "1x1 projection conv", "; `relu6`: MobileNetV2 Fig. 6's "
                       "non-linear bottleneck")
NL_DW1 = _nl_field("dw1", "first depthwise conv")
NL_REDUCE = _nl_field("reduce", "1x1 reduction conv")
NL_DW2 = _nl_field("dw2", "last depthwise conv", "; `relu6`: MobileNeXt Sec. 4.4's ablation")


def conv_nl(f: dict, conv: str, default):
    """The activation after ``conv``: the row's `nl_<conv>` when given, else ``default``."""
    value = f.get(f"nl_{conv}")
    return default if value is None else nonlinearity(value)[0]


def unknown_nls(f: dict, keys) -> list:
    """A located problem for each of ``keys`` naming no known nonlinearity."""
    out = []
    for key in keys:
        value = f.get(key)
        if value is not None and nonlinearity(value)[0] is None:
            out.append((key, f"unknown nonlinearity `{value}`", nonlinearity(value)[1]))
    return out


def checks(*fns):
    """One block check running each of ``fns`` (row fields -> problems)."""
    return lambda f: [problem for fn in fns for problem in fn(f)]


def nl_check(*fields: Field):
    """The check that every per-conv nonlinearity of ``fields`` is known."""
    return lambda f: unknown_nls(f, [x.name for x in fields])
