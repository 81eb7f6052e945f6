"""Hand-computed counts on tiny specs: each formula written out as arithmetic."""
import pytest

import archspec
from archspec.analysis.cost import cost
from archspec.errors import CompileError
from archspec.ir import Graph
from archspec.ir import ops


def tiny(rows: str, res: int = 8, head: str = "") -> str:
    return f"name: tiny\ninput: {{resolution: {res}, channels: 3}}\nstages:\n{rows}\n{head}"


def test_conv_bn_act():
    t = archspec.loads(tiny("  - {block: conv, c: 8, k: 3, s: 1}")).cost().totals
    assert t.params == 8 * 3 * 9 + 2 * 8          # weights + BN gamma/beta
    assert t.buffers == 2 * 8                      # BN running mean/var
    assert t.madds == 8 * 8 * 8 * (3 * 9)          # H*W*Cout*(Cin*k*k)
    assert t.elementwise == 2 * 8 * 64 + 8 * 64    # BN scale+shift, ReLU6


def test_strided_conv_output_size():
    g = archspec.loads(tiny("  - {block: conv, c: 8, k: 3, s: 2}", res=7)).compile()
    assert g[g.outputs["output"]].shape == (8, 4, 4)   # floor((7 + 2 - 3) / 2) + 1


def test_inverted_residual_with_shortcut():
    rows = "  - {block: conv, c: 8, k: 1}\n  - {block: ir, t: 2, c: 8}"
    r = archspec.loads(tiny(rows, res=4)).cost()
    stem = 8 * 3 + 16
    expand, dw, project = 8 * 16 + 32, 16 * 9 + 32, 16 * 8 + 16
    assert r.totals.params == stem + expand + dw + project
    hw = 16
    assert r.totals.madds == hw * 8 * 3 + hw * 16 * 8 + hw * 16 * 9 + hw * 8 * 16
    names = [e.name for e in r.layers]
    assert "stages.1.block0.add" in names


def test_no_shortcut_when_stride_or_channels_change():
    rows = "  - {block: conv, c: 8, k: 1}\n  - {block: ir, t: 2, c: 16}\n" \
           "  - {block: ir, t: 2, c: 16, s: 2}"
    names = [n.name for n in archspec.loads(tiny(rows)).compile()]
    assert not any(n.endswith(".add") for n in names)


def test_expansion_one_has_no_expand_conv():
    rows = "  - {block: conv, c: 8, k: 1}\n  - {block: ir, t: 1, c: 8}"
    names = [n.name for n in archspec.loads(tiny(rows)).compile()]
    assert not any(".expand." in n for n in names)


def test_squeeze_excite():
    rows = ("  - {block: conv, c: 16, k: 1}\n"
            "  - {block: bneck, exp: 72, c: 16, k: 5, se: yes, nl: HS}")
    r = archspec.loads(tiny(rows, res=4)).cost()
    squeeze = 24            # make_divisible(72 // 4 = 18, 8) = 24 (16 would round down >10%)
    se_params = 72 * squeeze + squeeze + squeeze * 72 + 72
    block = (16 * 72 + 144) + (72 * 25 + 144) + se_params + (72 * 16 + 32)
    assert r.totals.params == (3 * 16 + 32) + block
    se_madds = 72 * squeeze * 2
    hw = 16
    assert r.totals.madds == hw * 16 * 3 + hw * 72 * 16 + hw * 72 * 25 + se_madds + hw * 16 * 72


def test_head_pool_conv_classifier():
    head = "head:\n  - {block: pool}\n  - {block: conv, k: 1, c: 32, bn: false, nl: HS}\n" \
           "  - {block: classifier, dropout: 0.2}"
    r = archspec.loads(tiny("  - {block: conv, c: 8, k: 1}", head=head) + "\nclasses: 10").cost()
    assert r.totals.params == (3 * 8 + 16) + (8 * 32 + 32) + (32 * 10 + 10)
    assert r.totals.madds == 64 * 8 * 3 + 8 * 32 + 32 * 10


def test_width_multiplier_rounds_to_divisor():
    text = tiny("  - {block: conv, c: 32, k: 1}") + "width: 0.35\n"
    g = archspec.loads(text).compile()
    # 32 * 0.35 = 11.2 -> nearest multiple of 8 is 8, which is >10% below, so 16
    assert g[g.outputs["output"]].shape[0] == 16


def test_group_conv_and_depthwise():
    rows = "  - {block: conv, c: 8, k: 1}\n  - {block: conv, c: 8, k: 3, groups: dw}\n" \
           "  - {block: conv, c: 16, k: 1, groups: 4}"
    r = archspec.loads(tiny(rows, res=2)).cost()
    assert r.totals.params == (24 + 16) + (8 * 9 + 16) + (16 * 2 + 32)


def test_unknown_op_is_an_error_not_zero():
    @__import__("dataclasses").dataclass(frozen=True)
    class Mystery:
        kind = "mystery"

        def infer(self, shapes):
            return shapes[0]

    g = Graph("g")
    x = g.add("input", ops.Input((3, 4, 4)))
    g.add("m", Mystery(), [x])
    g.outputs["output"] = "m"
    with pytest.raises(CompileError, match="cost pass: unknown op kind 'mystery'"):
        cost(g)


def test_batch_and_dtype():
    spec = archspec.loads(tiny("  - {block: conv, c: 8, k: 3}"))
    a, b = spec.cost(), spec.cost(batch=4, dtype="fp16")
    assert b.totals.madds == 4 * a.totals.madds and b.totals.params == a.totals.params
    assert b.layers[0].act_bytes == a.layers[0].act_bytes * 4 // 2


def test_rows_aggregate_to_totals():
    r = archspec.load("mobilenetv3_large").cost()
    for per in ("layer", "block", "stage"):
        assert sum(e.params for e in r.rows(per)) == r.totals.params
        assert sum(e.madds for e in r.rows(per)) == r.totals.madds


def test_taps_name_the_last_block_at_each_stride():
    g = archspec.load("mobilenetv2").compile()
    assert g[g.taps["C5"]].shape == (320, 7, 7)
    assert g[g.taps["C4"]].shape == (96, 14, 14)
    assert g.taps["C4"] == "stages.5.block2.add"
