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
LRASPP = """taps: {low: stages.0, high: stages.1}
heads:
  - {block: lraspp, from: [low, high], pool_k: [5, 5]}
"""


def problems(path, **overrides):
    with pytest.raises(SpecError) as e:
        archspec.load(path, **overrides).compile()
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


def test_stride_beyond_the_map_follows_torch(write):
    # torch: Conv2d(3, 8, 3, stride=8, padding=1) on 4x4 gives (4 + 2 - 3) // 8 + 1 = 1 row
    text = "name: x\ninput: {resolution: 4}\nstages:\n  - {block: conv, c: 8, s: 8}\n"
    graph = archspec.load(write(text)).compile()
    assert graph[graph.outputs["output"]].shape == (8, 1, 1)


def test_window_larger_than_map_points_at_the_head(write):
    p = one(write(GOOD + LRASPP.replace("[5, 5]", "[9, 9]")))
    assert (p.location.path, p.location.line) == ("heads[0]", 10)
    assert "a 9x9 avg pool window with padding (0, 0) does not fit a 8x8 feature map" \
        in p.message


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
    with pytest.raises(SpecError, match="width=: must be > 0 and <= 16, got -1"):
        archspec.load("mobilenetv2", width=-1)
    with pytest.raises(SpecError, match="resolution=: must be >= 1 and <= 8192, got 0"):
        archspec.load("mobilenetv2", resolution=0)


def test_overrides_checked_as_options():
    from archspec.errors import overrides_are_options

    with overrides_are_options(), pytest.raises(SpecError) as e:
        archspec.load("mobilenetv2", width=0)
    assert str(e.value) == "command line: --width: must be > 0 and <= 16, got 0"


@pytest.mark.parametrize("value,msg", [(float("nan"), "must be a finite number, got nan"),
                                       (float("inf"), "must be a finite number, got inf"),
                                       ("224", "must be a number, got '224'"),
                                       (True, "must be a number, got True"),
                                       (7.5, "must be a whole number, got 7.5"),
                                       (10**30, "must be >= 1 and <= 8192")])
def test_bad_override_values_are_problems(value, msg):
    with pytest.raises(SpecError) as e:
        archspec.load("mobilenetv2").with_(resolution=value)
    (p,) = e.value.problems
    assert p.location.path == "resolution=" and msg in p.message


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


# ---- numbers outside the rows (issue 14) --------------------------------------------------
@pytest.mark.parametrize("line,path,msg", [
    ("width: .nan", "width", "nan is not a finite number"),
    ("width: .inf", "width", "inf is not a finite number"),
    ("width: -.inf", "width", "-inf is not a finite number"),
    ("width: 1.0e+300", "width", "greater than the maximum of 16"),
    ("classes: .nan", "classes", "nan is not a finite number"),
    ("classes: 100000000000000000000", "classes", "greater than the maximum"),
    ("divisor: .inf", "divisor", "inf is not a finite number"),
    ("input: {resolution: .nan}", "input.resolution", "nan is not a finite number"),
    ("input: {channels: 1.0e+300}", "input.channels", "greater than the maximum"),
    ("input: {resolution: 100000000000000000000}", "input.resolution", "greater than the max"),
    ("schedule: {kind: linear, start: .nan, end: 10}", "schedule.start", "not a finite number"),
    ("schedule: {kind: linear, start: 16, end: 1.0e+300}", "schedule.end", "greater than"),
    ("defaults: {t: .nan}", "defaults.t", "nan is not a finite number"),
])
def test_top_level_numbers_are_checked(write, line, path, msg):
    p = one(write(f"name: ok\n{line}\nstages:\n  - {{block: conv, c: 16}}\n"))
    assert p.location.path == path and p.location.line == 2 and msg in p.message


def test_top_level_nan_is_a_located_exit_2(write):
    from conftest import run_cli

    r = run_cli("cost", write(GOOD.replace("name: ok", "name: ok\nwidth: .nan")))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"{r.args[-1]}:2:8: width: nan is not a finite number"


# ---- every problem, not the first (issue 14) ----------------------------------------------
def test_every_unknown_key_of_a_mapping_is_reported(write):
    ps = problems(write(GOOD.replace("name: ok", "name: ok\nfoo: 1\nbar: 2")))
    assert [(p.location.path, p.location.line, p.location.column) for p in ps] == \
        [("foo", 2, 6), ("bar", 3, 6)]
    assert all(p.message.startswith("unknown key") and p.hint for p in ps)


def test_unknown_keys_in_nested_mappings_and_rows(write):
    text = ("name: x\ninput: {resolution: 32, chanels: 3, depth: 1}\nstages:\n"
            "  - {block: conv, c: 16, zz: 1, qq: 2}\n")
    ps = problems(write(text))
    assert [p.location.path for p in ps] == ["input.chanels", "input.depth",
                                             "stages[0].zz", "stages[0].qq"]
    assert "did you mean `channels`?" in ps[0].hint
    # a known block names its own fields, not every block's
    assert ps[2].message == "block `conv` does not take `zz`" and ps[2].location.line == 4
    assert "pw_nl" not in ps[2].hint and "groups" in ps[2].hint


def test_problems_outside_the_rows_do_not_hide_the_rows(write):
    text = ("name: x\ninput: {resolution: 0}\nwidth: 20\ndefaults: {nl: relu, k: 2}\n"
            "patch:\n  - {rows: 0, set: {s: zero}}\nschedule: {kind: cubic, start: 1, end: 2}\n"
            "stages:\n  columns: [block, t, c, n, s]\n  rows:\n"
            "    - [conv, -, 16, 1, 2]\n    - [ri, 6, 24, 2, 2]\n    - [ir, 6, 0, 1, 1]\n")
    ps = problems(write(text))
    assert [p.location.path for p in ps] == [
        "input.resolution", "width", "defaults.k", "patch[0].set.s", "schedule.kind",
        "stages[1].block", "stages[2].c"]
    assert "did you mean `ir`?" in ps[5].hint


def test_unknown_column_is_reported_and_the_rows_still_checked(write):
    text = ("name: x\nstages:\n  columns: [block, t, cc, n, s]\n  rows:\n"
            "    - [conv, -, 16, 1, 2]\n    - [irr, 6, 24, 2, 2]\n")
    ps = problems(write(text))
    assert [p.location.path for p in ps] == ["stages.columns[2]", "stages[1].block"]
    assert ps[0].message == "unknown field `cc`" and "`c`" in ps[0].hint


def test_a_refused_default_does_not_cause_needs_errors(write):
    ps = problems(write("name: x\ndefaults: {c: big}\nstages:\n  - {block: conv}\n"
                        "  - {block: conv, c: 8, k: 4}\n"))
    assert [p.location.path for p in ps] == ["defaults.c", "stages[1].k"]


def test_table_row_that_is_not_a_list(write):
    p = one(write("name: x\nstages:\n  columns: [block, c]\n  rows:\n    - [conv, 16]\n"
                  "    - 5\n"))
    assert p.location.path == "stages[1]" and "must be a list of cells" in p.message


# ---- names (issue 14) ---------------------------------------------------------------------
def test_transposed_block_name_gets_did_you_mean(write):
    p = one(write(GOOD.replace("[ir, 6", "[ri, 6")))
    assert p.message == "unknown block `ri`" and p.hint == "did you mean `ir`?"


@pytest.mark.parametrize("word,expected", [("ri", "ir"), ("IR", "ir"), ("irr", "ir"),
                                           ("cnov", "conv"), ("sandglas", "sandglass"),
                                           ("hswsh", "hswish"), ("zzzz", None)])
def test_close_match(word, expected):
    from archspec.blocks import BLOCKS
    from archspec.errors import close_match
    from archspec.vocab import NONLINEARITIES

    assert close_match(word, [*BLOCKS.names(), *NONLINEARITIES]) == expected


def test_unknown_backend_lists_the_known_ones_once():
    from archspec.backends import available, get_backend
    from archspec.errors import BackendError

    for name, guess in (("tarch", "did you mean `torch`? "), ("zzz", "")):
        with pytest.raises(BackendError) as e:
            get_backend(name)
        known = ", ".join(available())
        assert str(e.value) == f"unknown backend `{name}` ({guess}known backends: {known})"


# ---- even kernels (issue 14) --------------------------------------------------------------
@pytest.mark.parametrize("text,path,line", [
    ("stages:\n  - {block: conv, c: 16}\n  - {block: ir, t: 6, c: 16, k: 4}\n", "stages[1].k", 4),
    ("defaults: {k: 2}\nstages:\n  - {block: conv, c: 16}\n", "defaults.k", 2),
    ("stages:\n  - {block: conv, c: 16}\nhead:\n  - {block: conv, c: 8, k: 6}\n", "head[0].k", 5),
    ("stages:\n  columns: [block, c, k, s]\n  rows:\n    - [conv, 16, 4, 2]\n", "stages[0].k", 5),
])
def test_even_kernel_is_a_located_error(write, text, path, line):
    p = one(write("name: x\n" + text))
    assert (p.location.path, p.location.line) == (path, line)
    assert "kernel size must be odd" in p.message and "keeps the feature map size" in p.hint


def test_odd_kernels_keep_the_size_and_the_shortcut(write):
    for k in (1, 3, 5, 7):
        spec = archspec.load(write("name: x\ninput: {resolution: 56}\nstages:\n"
                                   "  - {block: conv, c: 16}\n"
                                   f"  - {{block: ir, t: 6, c: 16, k: {k}}}\n"))
        graph = spec.compile()
        assert graph[graph.outputs["output"]].shape == (16, 56, 56)
        assert any(n.kind == "add" for n in graph)


def test_integral_floats_in_integer_fields_are_integers(write):
    # found while checking issue 14: `c: 16.0` passed the schema and crashed the compiler
    text = ("name: x\ninput: {resolution: 32.0}\nclasses: 10.0\ndefaults: {k: 3.0}\n"
            "patch:\n  - {rows: 1.0, set: {s: 2.0}}\nstages:\n  - {block: conv, c: 16.0}\n"
            "  - {block: ir, t: 6, c: 16, n: 2.0}\nhead:\n  - {block: pool}\n"
            "  - {block: classifier}\n")
    floats = archspec.load(write(text)).cost().totals
    ints = archspec.load(write(text.replace(".0", ""), "ints.yaml")).cost().totals
    assert floats == ints and floats.params > 0


# ---- errors caused by overrides are blamed on them (issue 14) -----------------------------
def test_resolution_override_error_blames_the_keyword():
    ps = problems("lraspp_mobilenetv3_large_cityscapes", resolution=160)
    assert len(ps) == 1
    p = ps[0]
    assert (p.location.file, p.location.path, p.location.line) == ("keyword argument",
                                                                    "resolution=", None)
    assert p.message.startswith("160 makes heads[0] (")
    assert "lraspp_mobilenetv3_large_cityscapes.yaml:" in p.message
    assert "does not fit a 10x10 feature map" in p.message
    assert p.hint == ("lraspp_mobilenetv3_large_cityscapes compiles with its own resolution, "
                      "[1024, 2048]")


def test_resolution_override_error_blames_the_option_on_the_command_line():
    from archspec.errors import overrides_are_options

    with overrides_are_options():
        (p,) = problems("lraspp_mobilenetv3_large_cityscapes", resolution=160)
    assert str(p).startswith("command line: --resolution: 160 makes heads[0] (")


def test_only_the_override_that_causes_the_error_is_blamed(write):
    path = write(GOOD + LRASPP)
    (p,) = problems(path, width=0.5, resolution=16, classes=3)
    assert p.location.path == "resolution=" and "together" not in p.message


def test_width_override_error_blames_the_width(write):
    path = write("name: x\ndivisor: 4\nstages:\n  - {block: conv, c: 16}\n"
                 "  - {block: conv, c: 16, groups: 8}\n")
    (p,) = problems(path, width=0.25, resolution=64)
    assert p.location.path == "width=" and p.message.startswith("0.25 makes stages[1] (")
    assert "groups=8 must divide both in (4) and out (4) channels" in p.message


def test_a_spec_that_fails_by_itself_is_blamed_on_its_row(write):
    path = write("name: x\ninput: {resolution: 4}\nstages:\n  - {block: conv, c: 16, groups: 2}\n")
    (p,) = problems(path, width=0.5)
    assert p.location.path == "stages[0]" and p.location.line == 4
    assert "groups=2 must divide both in (3) and out (16) channels" in p.message


def test_overrides_that_fail_only_together_are_all_blamed():
    from archspec.spec.blame import RowFailure, blame

    spec = archspec.load("mobilenetv2", width=0.5, resolution=96)
    row = spec.stages[4]

    def failure_of(s):  # a stand-in compiler that fails only with both overrides
        both = s.width == 0.5 and s.resolution == 96
        return RowFailure(row, "too small") if both else None

    ps = blame(spec, failure_of(spec), failure_of)
    assert [p.location.path for p in ps] == ["width=", "resolution="]
    assert ps[0].message.startswith("0.5 (together with resolution=96) makes stages[4] (")
    assert ps[0].message.endswith("fail: too small")


def test_character_yaml_refuses_is_located(write):
    # found by tests/test_fuzz.py: a control character used to give a problem without a line
    p = one(write("name: x\nsta\x1fges: []\n"))
    assert (p.location.line, p.location.column) == (2, 4)
    assert p.message == "the character U+001F is not allowed in YAML"


@pytest.mark.parametrize("text,path,line,msg", [
    ("stages: 5\n", "stages", 2, "expected a list of rows or a table (columns + rows), got 5"),
    ("stages:\n  columns: [block, c, c]\n  rows: []\n", "stages.columns", 3,
     "`c` given more than once"),
    ("patch: 5\nstages:\n  - {block: conv, c: 16}\n", "patch", 2, "expected array, got 5"),
    ("patch:\n  - {rows: 0, set: {t: .nan}}\nstages:\n  - {block: ir, t: 6, c: 16}\n",
     "patch[0].set.t", 3, "nan is not a finite number"),
])
def test_section_shapes(write, text, path, line, msg):
    p = one(write("name: x\n" + text))
    assert (p.location.path, p.location.line, p.message) == (path, line, msg)


def test_an_unknown_block_is_reported_beside_the_row_s_other_problems(write):
    ps = problems(write("name: x\nstages:\n  - {block: ri, c: 16, foo: 2}\n"))
    assert [p.location.path for p in ps] == ["stages[0].block", "stages[0].foo"]
    assert "did you mean `ir`?" in ps[0].hint


def test_a_misspelled_shipped_name_gets_a_suggestion():
    with pytest.raises(SpecError) as e:
        archspec.load("mobilenetv22")
    assert "did you mean `mobilenetv2`?" in e.value.problems[0].hint


def test_did_you_mean_suggests_only_close_names():
    from archspec.errors import close_match

    keys = ["head", "stages", "name", "width", "eps", "momentum"]
    assert close_match("schema", keys) is None
    assert close_match("epsilon", keys) == "eps"
    assert close_match("widht", keys) == "width" and close_match("stage", keys) == "stages"


@pytest.mark.parametrize("text, hint", [
    ("name: x\nstages:\n\t- {block: conv, c: 8}\n", "spaces, not tabs"),
    ("name: x\nstages:\n  - {block: conv, c: 8}\n   - {block: conv, c: 8}\n", "indentation"),
])
def test_malformed_yaml_says_what_to_do(write, text, hint):
    (p,) = problems(write(text))
    assert p.message.startswith("malformed YAML") and hint in p.hint and p.location.line
