"""Every error path of spec loading: one located, hinted problem per mistake."""
import pytest

import archspec
from archspec.errors import SpecError

GOOD = """name: ok
input: {resolution: 32, channels: 3}
stages:
  columns: [block, t, c, n, s]
  rows:
    - [conv, -, 16, 1, 2]
    - [ir, 6, 24, 2, 2]
"""


def problems(path):
    with pytest.raises(SpecError) as e:
        archspec.load(path).compile()
    return e.value.problems


def one(path):
    ps = problems(path)
    assert len(ps) == 1, ps
    return ps[0]


def test_good_spec_loads(write):
    assert archspec.load(write(GOOD)).cost().totals.params > 0


def test_unknown_top_level_key_points_at_the_key(write):
    p = one(write(GOOD.replace("name: ok", "name: ok\nclases: 10")))
    assert (p.location.line, p.location.column) == (2, 9)
    assert "unknown key `clases`" in p.message and "`classes`" in p.hint


def test_unknown_block_with_hint(write):
    p = one(write(GOOD.replace("[ir, 6", "[irr, 6")))
    assert p.location.path == "stages[1].block" and p.location.line == 7
    assert "did you mean `ir`" in p.hint


def test_unknown_nonlinearity_with_hint(write):
    p = one(write(GOOD + "defaults: {nl: hswsh}\n"))
    assert "unknown nonlinearity `hswsh`" in p.message and "`hswish`" in p.hint


def test_paper_abbreviations_accepted(write):
    for word in ("RE", "HS", "SW", "relu6", "hsigmoid", "linear", "sigmoid", "swish"):
        archspec.load(write(GOOD + f"defaults: {{nl: {word}}}\n"))


def test_all_problems_reported_in_file_order(write):
    text = GOOD.replace("[conv, -, 16, 1, 2]", "[conv, -, 16, 1, 2, 9]").replace(
        "[ir, 6, 24, 2, 2]", "[ir, 6, 24, 0, 2]\n    - [mystery, 1, 1, 1, 1]")
    ps = problems(write(text))
    assert len(ps) == 3
    assert [p.location.line for p in ps] == sorted(p.location.line for p in ps)
    assert "6 cells but there are 5 columns" in ps[0].message
    assert ps[1].location.path == "stages[1].n"
    assert "unknown block `mystery`" in ps[2].message


def test_field_a_block_does_not_take(write):
    p = one(write(GOOD + "head:\n  - {block: pool, k: 7}\n"))
    assert p.location.path == "head[0].k" and "does not take `k`" in p.message


def test_missing_required_field(write):
    p = one(write(GOOD.replace("rows:", "rows:\n    - [conv, -, -, 1, 1]")))
    assert "needs `c`" in p.message


def test_t_and_exp_exclusive(write):
    p = one(write("name: x\nstages:\n  - {block: ir, t: 6, exp: 96, c: 16}\n"))
    assert "exactly one of `t`, `exp`" in p.message


@pytest.mark.parametrize("value,msg", [("1.5", "expected integer"), ("0", "less than the minimum"),
                                       ("-3", "less than the minimum"), ("abc", "expected integer"),
                                       ("1000000000000", "greater than the maximum")])
def test_bad_numbers(write, value, msg):
    p = one(write(f"name: x\nstages:\n  - {{block: conv, c: {value}}}\n"))
    assert msg in p.message and p.location.path == "stages[0].c"


def test_nan_rejected(write):
    p = one(write("name: x\nstages:\n  - {block: ir, t: .nan, c: 16}\n"))
    assert "not a finite number" in p.message


def test_stride_larger_than_map(write):
    text = "name: x\ninput: {resolution: 4}\nstages:\n  - {block: conv, c: 8, s: 8}\n"
    p = one(write(text))
    assert "stride 8 is larger than the 4x4 feature map" in p.message
    assert p.location.line == 4


def test_group_divisibility(write):
    p = one(write("name: x\nstages:\n  - {block: conv, c: 30, groups: 4}\n"))
    assert "groups=4 does not divide c=30" in p.message


def test_forced_residual_must_fit(write):
    text = ("name: x\nstages:\n  - {block: conv, c: 8}\n"
            "  - {block: ir, t: 2, c: 16, residual: true}\n")
    p = one(write(text))
    assert "residual: true" in p.message and p.location.path == "stages[1]"


def test_duplicate_key(write):
    p = one(write("name: x\nname: y\nstages: []\n"))
    assert "duplicate key `name`" in p.message and p.location.line == 2


def test_malformed_yaml(write):
    p = one(write("name: x\nstages: [\n"))
    assert p.message.startswith("malformed YAML") and p.location.line is not None


def test_tab_indentation(write):
    p = one(write("name: x\nstages:\n\t- {block: conv}\n"))
    assert "malformed YAML" in p.message and p.location.line == 3


def test_non_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\nstages: []\n")
    p = one(path)
    assert "UTF-8" in p.message and (p.location.line, p.location.column) == (1, 10)


@pytest.mark.parametrize("text", [
    "name: x\nstages: !!python/object/apply:os.system ['echo pwned']\n",
    "name: !!python/name:os.system x\nstages: []\n",
    "name: x\nstages: !!set {a, b}\n",
])
def test_object_tags_refused(write, text):
    assert "unsupported YAML tag" in one(write(text)).message


def test_billion_laughs_refused_quickly(write):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    p = one(write("\n".join(lines) + "\n"))
    assert "expands to more than" in p.message


def test_huge_file_refused(write):
    p = one(write("name: x\n" + "#" * 2_000_000 + "\nstages: []\n"))
    assert "the limit is" in p.message


def test_deep_nesting_refused(write):
    p = one(write("name: x\nstages: " + "[" * 100 + "]" * 100 + "\n"))
    assert "nesting deeper" in p.message


def test_empty_and_non_mapping(write):
    assert "empty" in one(write("")).message
    assert "mapping" in one(write("- 1\n- 2\n")).message


def test_missing_file_and_directory(tmp_path):
    assert "file not found" in one(tmp_path / "nope.yaml").message
    assert "directory" in one(tmp_path).message


def test_missing_stages(write):
    assert "missing `stages`" in one(write("name: x\n")).message


def test_table_row_typed_as_mapping_cell(write):
    p = one(write(GOOD.replace("[ir, 6, 24, 2, 2]", "[ir, six, 24, 2, 2]")))
    assert p.location.path == "stages[1].t" and "expected number" in p.message


def test_overrides_checked():
    with pytest.raises(SpecError, match="--width"):
        archspec.load("mobilenetv2", width=-1)
    with pytest.raises(SpecError, match="--resolution"):
        archspec.load("mobilenetv2", resolution=0)


def test_graph_size_limit():
    from archspec.errors import CompileError

    with pytest.raises(CompileError, match="exceeds 50 nodes"):
        archspec.load("mobilenetv2").compile(max_nodes=50)


def test_graph_size_limit_from_environment():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "archspec", "cost", "mobilenetv2"],
                       capture_output=True, text=True, env={**__import__("os").environ,
                                                            "ARCHSPEC_MAX_NODES": "40"})
    assert r.returncode == 2 and "exceeds 40 nodes" in r.stderr


def test_huge_repeat_count_is_bounded_quickly(write):
    import time

    from archspec.errors import CompileError

    rows = "\n".join("  - {block: ir, t: 6, c: 16, n: 1000}" for _ in range(100))
    t = time.perf_counter()
    with pytest.raises(CompileError, match="exceeds"):
        archspec.load(write(f"name: x\nstages:\n  - {{block: conv, c: 16}}\n{rows}\n")).compile()
    assert time.perf_counter() - t < 30


def test_row_that_is_not_a_mapping(write):
    p = one(write("name: x\nstages:\n  - [conv, 16]\n"))
    assert "a row must be a mapping" in p.message and p.location.path == "stages[0]"


def test_null_field_in_list_row_counts_as_missing(write):
    # found by tests/test_fuzz.py: `c: ~` used to reach the lowering as None
    p = one(write("name: x\nstages:\n  - {block: conv, c: ~}\n"))
    assert "needs `c`" in p.message


@pytest.mark.parametrize("block", ["sandglass", "classic_dw", "sandglass_swapped",
                                   "rexnet_bneck"])
def test_forced_residual_is_checked_by_every_block(write, block):
    text = (f"name: x\ninput: {{resolution: 32}}\nstages:\n  - {{block: conv, c: 32}}\n"
            f"  - {{block: {block}, t: 2, c: 16, s: 2, residual: true}}\n")
    p = one(write(text))
    assert "residual: true" in p.message and p.location.path == "stages[1]"


def test_blank_c_without_schedule(write):
    p = one(write("name: x\nstages:\n  - {block: conv, c: 16}\n  - {block: rexnet_bneck, t: 6}\n"))
    assert "`c` is blank" in p.message and p.location.line == 4


def test_repeats_only_in_stages(write):
    p = one(write("name: x\nstages:\n  - {block: conv, c: 16}\n"
                  "head:\n  - {block: conv, c: 8, n: 3}\n"))
    assert p.location.path == "head[0].n"


def test_merge_keys_refused(write):
    p = one(write("name: x\nstages:\n  - &b {block: conv, c: 16}\n  - {<<: *b, c: 32}\n"))
    assert "merge keys" in p.message and p.location.line == 4


def test_extends_is_relative_to_the_file_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text("name: base\nstages:\n  - {block: conv, c: 16}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("extends: base.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert "cannot find the spec it extends" in one(tmp_path / "sub" / "child.yaml").message
    (tmp_path / "v.yaml").write_text("extends: mobilenetv2\nwidth: 0.5\n")  # a shipped name
    assert archspec.load(tmp_path / "v.yaml").cost().totals.params == 1_968_680
