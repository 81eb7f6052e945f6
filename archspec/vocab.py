"""Words the papers use, mapped to archspec's canonical names."""
from __future__ import annotations

from .errors import did_you_mean

NONLINEARITIES = {
    "relu": "relu", "re": "relu",
    "relu6": "relu6", "r6": "relu6",
    "hswish": "hswish", "hs": "hswish", "h-swish": "hswish", "hardswish": "hswish",
    "hard_swish": "hswish",
    "hsigmoid": "hsigmoid", "h-sigmoid": "hsigmoid", "hardsigmoid": "hsigmoid",
    "hard_sigmoid": "hsigmoid",
    "swish": "swish", "sw": "swish", "silu": "swish", "swish-1": "swish",
    "sigmoid": "sigmoid",
    "gelu": "gelu",
    "elu": "elu",
    "softplus": "softplus",
    "leaky_relu": "leaky_relu", "lrelu": "leaky_relu", "leakyrelu": "leaky_relu",
    "leaky-relu": "leaky_relu",
    "linear": "linear", "none": "linear", "identity": "linear",
}


def nonlinearity(word) -> tuple[str | None, str]:
    """(canonical name, "") or (None, hint)."""
    key = str(word).strip().lower()
    if key in NONLINEARITIES:
        return NONLINEARITIES[key], ""
    return None, did_you_mean(key, NONLINEARITIES)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never down by more than 10%.

    The rule of the MobileNet reference code (TF-slim ``_make_divisible``, torchvision)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new
