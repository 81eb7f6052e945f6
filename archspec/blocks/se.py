"""Squeeze-excite as the blocks configure it: the fields (gate, squeeze activation, what the
squeeze width is a fraction of, its rounding) and the one function that adds it.

Defaults are MobileNetV3's SE (ReLU squeeze, hard-sigmoid gate, 1/4 of the expansion
rounded to the spec's divisor); EfficientNet and MnasNet-A1 (timm `se_layer` with
`se_from_exp=False`) squeeze from the block input, with swish (EfficientNet) or ReLU and a
sigmoid gate, rounded to the nearest integer (`se_divisor: none`)."""
from __future__ import annotations

from ..vocab import make_divisible, nonlinearity
from .fields import Field, Nonlinearity

SE_GATE = Field("se_gate", str, "hsigmoid", "SE gate: `hsigmoid` or `sigmoid`",
                choices=("hsigmoid", "sigmoid"))
SE_NL = Field("se_nl", Nonlinearity, "relu", "nonlinearity after the SE squeeze conv "
              "(e.g. `swish` as EfficientNet)")
SE_OF = Field("se_of", str, "exp", "the width `se_ratio` is a fraction of: `exp` (the "
              "expansion) or `input` (the block input, as EfficientNet and MnasNet-A1)",
              choices=("exp", "input"))
SE_DIVISOR = Field("se_divisor", int, None, "the SE squeeze width is "
                   "make_divisible(int(width x se_ratio), se_divisor); `none`: "
                   "round(width x se_ratio); default: the spec's `divisor`",
                   minimum=1, maximum=1024, consts=("none",))

SE_FIELDS = (SE_GATE, SE_NL, SE_OF, SE_DIVISOR)


def check_se_nl(f: dict) -> list:
    """A located problem when `se_nl` names no known nonlinearity."""
    if f.get("se_nl") is not None and nonlinearity(f["se_nl"])[0] is None:
        return [("se_nl", f"unknown nonlinearity `{f['se_nl']}`", nonlinearity(f["se_nl"])[1])]
    return []


def squeeze_width(b, f: dict, x: str, hidden: int) -> int:
    """Squeeze width from the row's `se_ratio`, `se_of` and `se_divisor`."""
    base = b.channels(x) if f.get("se_of") == "input" else hidden
    value = base * f["se_ratio"]
    divisor = f.get("se_divisor")
    if divisor == "none":
        return max(1, round(value))
    return make_divisible(int(value), divisor or b.divisor)


def add_se(b, local: str, y: str, f: dict, x: str, hidden: int) -> str:
    """SE on ``y`` (``hidden`` wide) of the block whose input is ``x``, as the row says."""
    inner = nonlinearity(f.get("se_nl") or "relu")[0]
    return b.squeeze_excite(local, y, squeeze_width(b, f, x, hidden), inner=inner,
                            gate=f.get("se_gate") or "hsigmoid")
