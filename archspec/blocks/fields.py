"""Block fields: each declared once with its type, range, default and a one-line doc.

A block lists the fields it takes (``fields=(C, K(default=5), S, ...)``); the JSON Schema
that rows follow and the block reference in docs/spec.md are generated from these
declarations (``python -m archspec.spec.generate``). The fields most blocks share are
declared here; a field only one block uses is declared in that block's module.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

REQUIRED = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()  # no default


class Nonlinearity(str):
    """Field type: the name of an activation (`relu`, `RE`, `hswish`, ...; see vocab)."""


_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string",
               Nonlinearity: "string"}
_TYPE_WORDS = {int: "int", float: "number", bool: "bool", str: "text",
               Nonlinearity: "nonlinearity"}


@dataclass(frozen=True)
class Field:
    """One field of a table row. ``consts`` are literal values accepted besides the type
    (``groups: dw``); ``choices`` restrict a text field (checked after the schema, with
    the block's own checks); ``scaled``: a channel count the width multiplier scales."""

    name: str
    type: type
    default: object = REQUIRED
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    odd: bool = False
    consts: tuple = ()
    choices: tuple = ()
    scaled: bool = False
    shared_doc: str = ""  # the doc of the declaration a block's variant was made from

    def __call__(self, **changes) -> Field:
        """The same field with another default, doc or scaling (``K(default=5)``)."""
        unknown = set(changes) - {"default", "doc", "scaled"}
        if unknown:
            raise TypeError(f"a block may change a field's default, doc or scaled, not "
                            f"{', '.join(sorted(unknown))}")
        return replace(self, shared_doc=self.shared_doc or self.doc, **changes)

    def schema(self) -> dict:
        """This field's JSON Schema; ``null`` (not given) is always accepted."""
        if self.consts:  # bounds apply to numbers only, so a number out of range is told so
            return {"type": [_JSON_TYPES[self.type], "string", "null"], **self._bounds(),
                    "if": {"type": "string"}, "then": {"enum": list(self.consts)}}
        out = {"type": [_JSON_TYPES[self.type], "null"], **self._bounds()}
        if self.odd:
            out["not"] = {"type": "integer", "multipleOf": 2}
        return out

    def _bounds(self) -> dict:
        names = {"minimum": self.minimum, "exclusiveMinimum": self.exclusive_minimum,
                 "maximum": self.maximum, "exclusiveMaximum": self.exclusive_maximum}
        return {k: v for k, v in names.items() if v is not None}

    def type_text(self, choices: bool = True) -> str:
        """The type and range in words, for the docs: ``odd int in [1, 31]``."""
        words = _TYPE_WORDS[self.type]
        low = (f"[{self.minimum}" if self.minimum is not None else
               f"({self.exclusive_minimum}" if self.exclusive_minimum is not None else "")
        high = (f"{self.maximum}]" if self.maximum is not None else
                f"{self.exclusive_maximum})" if self.exclusive_maximum is not None else "")
        text = ("odd " if self.odd else "") + words
        if low or high:
            text += f" in {low or '(-inf'}, {high or 'inf)'}"
        if self.choices and choices:
            text += ": " + ", ".join(f"`{c}`" for c in self.choices)
        return text + "".join(f" or `{c}`" for c in self.consts)

    def mismatch(self, value) -> str:
        """Why ``value`` cannot be this field's default ("" when it can)."""
        if value is REQUIRED or value is None or value in self.consts:
            return ""
        kinds = {int: int, float: (int, float), bool: bool, str: str, Nonlinearity: str}
        if not isinstance(value, kinds[self.type]) or \
                (self.type in (int, float) and isinstance(value, bool)):
            return f"default {value!r} is not a {_TYPE_WORDS[self.type]}"
        if self.choices and value not in self.choices:
            return f"default {value!r} is not one of {self.choices}"
        return ""


# ---- the fields the papers' tables share ----------------------------------------------
C = Field("c", int, REQUIRED, "output channels", minimum=1, maximum=100000, scaled=True)
T = Field("t", float, REQUIRED, "expansion ratio: hidden = round(input x t)",
          exclusive_minimum=0, maximum=64)
EXP = Field("exp", int, REQUIRED, "expansion size (MobileNetV3's \"exp size\")",
            minimum=1, maximum=100000, scaled=True)
N = Field("n", int, 1, "repeats; the first uses stride `s`, the others stride 1",
          minimum=1, maximum=1000)
S = Field("s", int, 1, "stride", minimum=1, maximum=64)
K = Field("k", int, 3, "kernel size, odd: padding (k-1)/2 on each side keeps the feature "
          "map size", minimum=1, maximum=31, odd=True)
D = Field("d", int, 1, "dilation", minimum=1, maximum=32)
NL = Field("nl", Nonlinearity, "relu6", "nonlinearity after each conv but the last")
SE = Field("se", bool, False, "squeeze-excite after the depthwise conv")
SE_RATIO = Field("se_ratio", float, 0.25, "SE squeeze width as a fraction of the expansion",
                 exclusive_minimum=0, maximum=1)
RESIDUAL = Field("residual", bool, None, "`true` insists on a shortcut (an error if shapes "
                 "differ), `false` removes it; default: when stride is 1 and shapes agree")
MIN_WIDTH = Field("min_width", float, None, "this row is width-scaled by "
                  "max(width, min_width)", exclusive_minimum=0, maximum=16)
SCALE = Field("scale", bool, True, "`false`: channel counts are used as written, not "
              "width-scaled")
BN = Field("bn", bool, True, "batch norm after the conv (`false`: \"NBN\", and then a bias)")
BIAS = Field("bias", bool, None, "conv bias (default: when there is no batch norm)")
GROUPS = Field("groups", int, 1, "conv groups, or `dw` for depthwise", minimum=1,
               maximum=100000, consts=("dw",))
DROPOUT = Field("dropout", float, REQUIRED, "dropout probability", minimum=0,
                exclusive_maximum=1)

WIDTH = (MIN_WIDTH, SCALE)  # the width-multiplier fields of every block with channels
