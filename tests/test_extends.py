"""`extends` and `patch`: variants in a few lines; cycles and missing files are errors."""
import pytest

import archspec
from archspec.errors import SpecError

BASE = """name: base
input: {resolution: 32}
classes: 10
stages:
  columns: [block, t, c, n, s]
  rows:
    - [conv, -, 16, 1, 2]
    - [ir, 6, 24, 2, 2]
    - [ir, 6, 32, 1, 1]
"""
GATE = """taps: {low: stages.0, high: stages.2}
heads:
  - {block: lraspp, from: [low, high], pool_k: [5, 5]}
"""


def test_override_fields(write):
    write(BASE, "base.yaml")
    child = archspec.load(write("extends: base.yaml\nname: child\nwidth: 0.5\n", "child.yaml"))
    assert child.name == "child" and child.width == 0.5 and child.classes == 10
    assert len(child.stages) == 3


def test_extends_shipped_spec_by_relative_path(write, tmp_path):
    import shutil

    from conftest import SPECS

    shutil.copy(SPECS / "mobilenetv2.yaml", tmp_path / "mobilenetv2.yaml")
    s = archspec.load(write("extends: mobilenetv2.yaml\nwidth: 0.75\n", "v.yaml"))
    assert s.cost().totals.params == 2_636_424


def test_patch_by_row_and_block(write):
    write(BASE, "base.yaml")
    s = archspec.load(write("extends: base.yaml\npatch:\n  - {rows: 1, set: {k: 5}}\n"
                            "  - {block: ir, set: {se: true}}\n", "child.yaml"))
    assert s.stages[1].fields["k"] == 5 and s.stages[2].fields["k"] == 3
    assert all(r.fields["se"] for r in s.stages[1:])


def test_patch_errors_are_located(write):
    write(BASE, "base.yaml")
    with pytest.raises(SpecError) as e:
        archspec.load(write("extends: base.yaml\npatch:\n  - {rows: 9, set: {k: 5}}\n",
                            "child.yaml"))
    assert "beyond the 3 stage rows" in str(e.value) and "child.yaml:3" in str(e.value)


def test_error_in_base_points_at_base_file(write):
    write(BASE.replace("[ir, 6, 32, 1, 1]", "[ir, 6, 32, 1, 100]"), "base.yaml")
    with pytest.raises(SpecError) as e:
        archspec.load(write("extends: base.yaml\n", "child.yaml"))
    assert "base.yaml:9" in str(e.value)


def test_cycle(write):
    write("extends: b.yaml\n", "a.yaml")
    path = write("extends: a.yaml\n", "b.yaml")
    with pytest.raises(SpecError, match="cycle: b.yaml -> a.yaml -> b.yaml"):
        archspec.load(path)


def test_self_cycle(write):
    with pytest.raises(SpecError, match="cycle"):
        archspec.load(write("extends: spec.yaml\n"))


def test_missing_base(write):
    with pytest.raises(SpecError, match="cannot find the spec it extends: nope.yaml"):
        archspec.load(write("extends: nope.yaml\n"))


def test_deep_chain(write):
    write(BASE, "s0.yaml")
    for i in range(1, 20):
        write(f"extends: s{i - 1}.yaml\n", f"s{i}.yaml")
    with pytest.raises(SpecError, match="deeper than 16"):
        archspec.load(write("extends: s19.yaml\n", "top.yaml"))


# ---- issue 14: aliases in patches, and errors blamed on the patch that caused them ---------
def _problems(path, **overrides):
    with pytest.raises(SpecError) as e:
        archspec.load(path, **overrides).compile()
    return e.value.problems


def test_patch_names_rows_by_an_alias(write):
    write(BASE, "base.yaml")
    for alias in ("bottleneck", "IR", "mbconv"):
        s = archspec.load(write(f"extends: base.yaml\npatch:\n  - {{block: {alias}, "
                                "set: {se: true}}\n", "child.yaml"))
        assert [r.fields.get("se") for r in s.stages] == [None, True, True]


def test_patch_with_an_unknown_block_gets_did_you_mean(write):
    write(BASE, "base.yaml")
    (p,) = _problems(write("extends: base.yaml\npatch:\n  - {block: ri, set: {se: true}}\n",
                           "child.yaml"))
    assert p.location.path == "patch[0].block" and p.location.file.endswith("child.yaml")
    assert p.message == "unknown block `ri`" and p.hint == "did you mean `ir`?"


def test_patch_that_matches_no_row_is_an_error(write):
    write(BASE, "base.yaml")
    (p,) = _problems(write("extends: base.yaml\npatch:\n  - {rows: [0], block: ir, "
                           "set: {se: true}}\n", "child.yaml"))
    assert p.message == "patch matches no row" and p.hint == "rows 0 hold: conv"
    assert (p.location.line, p.location.path) == (3, "patch[0]")


def test_compile_error_caused_by_a_patch_points_at_the_patch(write):
    write(BASE, "base.yaml")
    child = write("extends: base.yaml\npatch:\n  - {block: ir, set: {se: true}}\n"
                  "  - {rows: 0, set: {groups: 2}}\n", "child.yaml")
    (p,) = _problems(child)
    assert p.location.file == str(child) and (p.location.line, p.location.path) == \
        (4, "patch[1]")
    assert "makes stages[0] (" in p.message and "base.yaml:7:7)" in p.message
    assert "groups=2 must divide both in (3) and out (16) channels" in p.message


def test_compile_error_not_caused_by_a_patch_points_at_the_row(write):
    write(BASE + GATE.replace("[5, 5]", "[9, 9]"), "base.yaml")
    (p,) = _problems(write("extends: base.yaml\npatch:\n  - {rows: 1, set: {se: true}}\n",
                           "child.yaml"))
    assert p.location.file.endswith("base.yaml") and p.location.path == "heads[0]"
    assert "9x9 avg pool window with padding (0, 0) does not fit a 8x8" in p.message


def test_override_error_in_a_variant_is_blamed_on_the_override(write):
    write(BASE + GATE, "base.yaml")
    child = write("extends: base.yaml\npatch:\n  - {rows: 2, set: {k: 5}}\n", "child.yaml")
    (p,) = _problems(child, resolution=16)
    assert (p.location.file, p.location.path) == ("keyword argument", "resolution=")
    assert p.message.startswith("16 makes heads[0] (") and "base.yaml:12:5)" in p.message
    assert "does not fit a 4x4 feature map" in p.message
    assert p.hint == "base compiles with its own resolution, 32"


def test_a_patch_that_only_changes_how_a_row_fails_is_not_blamed(write):
    """The base's head fails on an 8x8 map by itself; a patch that makes the map 4x4 changes
    the message but not the failure: the problem stays at the head, not the patch."""
    write(BASE + GATE.replace("[5, 5]", "[9, 9]"), "base.yaml")
    (p,) = _problems(write("extends: base.yaml\npatch:\n  - {rows: 2, set: {s: 2}}\n",
                           "child.yaml"))
    assert p.location.file.endswith("base.yaml") and p.location.path == "heads[0]"
    assert "does not fit a 4x4 feature map" in p.message
