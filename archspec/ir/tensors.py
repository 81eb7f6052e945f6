"""Tensor sizes: element counts of IR shapes and the bytes per element of each dtype the
byte figures can assume (cost, memory and the latency kernels all count with these)."""
from __future__ import annotations

import math

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


def numel(shape) -> int:
    """The number of elements of a tensor of ``shape`` (1 for a scalar)."""
    return math.prod(shape)


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of ``dtype`` (one of DTYPE_BYTES)."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, not {dtype!r}")
    return DTYPE_BYTES[dtype]
