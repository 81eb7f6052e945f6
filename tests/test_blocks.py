"""A block is one module: its fields are declared once (the schema and the docs are generated
from them), block modules are found without hand imports, plugins come through the
``archspec.blocks`` entry-point group, registries refuse duplicates. GhostNet's ghost
bottleneck (one new file in archspec/blocks/) is proved as the other blocks are."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import archspec
from archspec.blocks import BLOCKS
from archspec.blocks.fields import C, Field
from archspec.blocks.registry import Registry, RegistryError
from archspec.errors import SpecError
from archspec.spec import generate

GHOSTNET = "ghostnet_100"  # archspec/specs/ghostnet_100.yaml


def test_generated_schema_and_docs_are_current():
    stale = generate.stale()
    assert not stale, f"stale: {', '.join(stale)}; regenerate with `{generate.COMMAND}`"


def test_runtime_schema_is_the_generated_one():
    import json

    assert archspec.spec.schema() == json.loads(generate.schema_text())


# ---- discovery -----------------------------------------------------------------------------
def test_every_block_module_is_found_without_a_hand_import():
    init = (Path(archspec.__file__).parent / "blocks" / "__init__.py").read_text()
    modules = {b.module.rsplit(".", 1)[1] for b in BLOCKS.builtins()}
    assert {"core", "ghost", "mobilenext", "paper"} <= modules
    assert not any(f"import {m}" in init or f"from .{m}" in init for m in modules)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package with a registry of its own and a block module nobody imports."""
    root = tmp_path / "toyblocks"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from archspec.blocks.registry import Registry\n"
        "REG = Registry(package=__name__, group='toyblocks.none')\n")
    (root / "extra.py").write_text(textwrap.dedent("""
        from archspec.blocks.fields import C
        from . import REG

        @REG.register("twice", fields=(C,))
        def twice(b, x, f):
            \"\"\"Two convs.\"\"\"
            return b.conv("b", b.conv("a", x, f["c"]), f["c"])
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__("toyblocks")
    for name in [m for m in sys.modules if m.startswith("toyblocks")]:
        del sys.modules[name]


def test_a_new_module_in_the_package_is_discovered(package):
    assert "toyblocks.extra" not in sys.modules
    assert package.REG.get("twice").summary == "Two convs."
    assert "toyblocks.extra" in sys.modules


def test_registries_refuse_duplicate_names():
    reg = Registry(package="archspec.blocks", group="toyblocks.none")
    reg.register("one", fields=(C,), aliases=("uno",))(lambda b, x, f: x)
    with pytest.raises(RegistryError, match="block name `one` is already registered"):
        reg.register("one", fields=(C,))(lambda b, x, f: x)
    with pytest.raises(RegistryError, match="block name `uno` is already registered"):
        reg.register("two", fields=(C,), aliases=("uno",))(lambda b, x, f: x)


def test_a_field_has_one_type_and_range_across_blocks():
    reg = Registry(package="archspec.blocks", group="toyblocks.none")
    reg.register("one", fields=(C,))(lambda b, x, f: x)
    wide = Field("c", int, 1, "channels", minimum=1, maximum=10**9)
    with pytest.raises(RegistryError, match="declares field `c` as int in \\[1, 1000000000\\]"):
        reg.register("two", fields=(wide,))(lambda b, x, f: x)
    reg.register("three", fields=(C(default=8, doc="other doc"),))(lambda b, x, f: x)
    assert reg.get("three").fields["c"] == 8


def test_a_default_must_fit_its_declaration():
    reg = Registry(package="archspec.blocks", group="toyblocks.none")
    with pytest.raises(RegistryError, match="default 'x' is not a int"):
        reg.register("one", fields=(C(default="x"),))(lambda b, x, f: x)
    with pytest.raises(RegistryError, match="not one of"):
        reg.register("two", fields=(Field("mode", str, "c", "", choices=("a", "b")),))(
            lambda b, x, f: x)


def test_unknown_block_and_fields_keep_their_messages():
    with pytest.raises(SpecError) as e:
        archspec.loads("stages: [{block: gohst, c: 16, exp: 16}]")
    assert "unknown block `gohst` (did you mean `ghost`?)" in str(e.value)
    with pytest.raises(SpecError, match="block `conv` does not take `ratio`"):
        archspec.loads("stages: [{block: conv, c: 16, ratio: 2}]")
    with pytest.raises(SpecError, match="block `ghost` does not take `ratoi` "
                                        "\\(did you mean `ratio`\\? it takes"):
        archspec.loads("stages: [{block: ghost, c: 16, exp: 16, ratoi: 3}]")


# ---- plugins through entry points (a subprocess: the registry is global) ------------------
PLUGIN = """
from archspec.blocks import BLOCKS, Field
from archspec.blocks.fields import C

REPEAT = Field("times", int, 2, "how many convs", minimum=1, maximum=8)

@BLOCKS.register("conv_stack", fields=(C, REPEAT))
def conv_stack(b, x, f):
    \"\"\"`times` 1x1 convs without bias.\"\"\"
    for i in range(f["times"]):
        x = b.conv(f"conv{i}", x, f["c"])
    return x
"""


def _plugin_env(tmp_path, source: str) -> dict:
    (tmp_path / "toyplugin.py").write_text(source)
    info = tmp_path / "toyplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[archspec.blocks]\ntoy = toyplugin\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def _run(env, *args, cwd):
    return subprocess.run([sys.executable, "-m", "archspec", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_a_plugin_adds_a_block_with_a_new_field(tmp_path):
    env = _plugin_env(tmp_path, PLUGIN)
    (tmp_path / "s.yaml").write_text("name: s\ninput: {resolution: 4, channels: 2}\n"
                                     "stages: [{block: conv_stack, c: 8, times: 3}]\n")
    r = _run(env, "cost", "s.yaml", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import json

    # conv 2->8, 8->8, 8->8, 1x1 without bias: 16 + 64 + 64 weights, each MAdd x 16 pixels
    totals = json.loads(r.stdout)["totals"]
    assert (totals["params"], totals["madds"]) == (144, 144 * 16)
    bare = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    r = _run(bare, "cost", str(tmp_path / "s.yaml"), cwd=tmp_path.parent)
    assert r.returncode == 2 and "unknown field `times`" in r.stderr


def test_a_plugin_cannot_take_a_builtin_name(tmp_path):
    env = _plugin_env(tmp_path, PLUGIN.replace('"conv_stack"', '"conv_stack", aliases=("ir",)'))
    (tmp_path / "s.yaml").write_text("stages: [{block: conv_stack, c: 8}]\n")
    r = _run(env, "validate", "s.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "block name `ir` is already registered (by archspec.blocks.core)" in r.stderr
    assert "Traceback" not in r.stderr


def test_builtin_specs_never_scan_entry_points():
    code = ("import sys, archspec; from archspec.blocks import BLOCKS; "
            "archspec.load('mobilenetv3_small').cost(); "
            "print(BLOCKS.plugins_loaded, 'importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["False", "False"]


# ---- the ghost bottleneck (GhostNet) -------------------------------------------------------
def _tiny(row: str):
    text = f"name: tiny\ndivisor: 1\ninput: {{resolution: 8, channels: 8}}\nstages: [{row}]\n"
    return archspec.loads(text)


def test_ghost_bottleneck_counts():
    spec = _tiny("{block: ghost, exp: 10, c: 6, s: 2, se: true, ratio: 3, dw_k: 5}")
    t = spec.cost().totals
    # ghost1 on 8x8: intrinsic ceil(10/3) = 4, primary 1x1 8->4: 32 + BN 8, MAdds 32*64;
    #   cheap dw 5x5 4->8 (2 ghosts each): 200 + BN 16, MAdds 200*64; concat 12, sliced to 10
    # dw 3x3 s2 on 10: 90 + BN 20, MAdds 90*16 (4x4 out)
    # SE: make_divisible(10 * 0.25, 4) = 4: fc1 40 + 4, fc2 40 + 10; MAdds 80
    # ghost2 to 6: intrinsic 2, primary 10->2: 20 + BN 4, MAdds 20*16;
    #   cheap dw 5x5 2->4: 100 + BN 8, MAdds 100*16
    # shortcut (8 -> 6, stride 2): dw 3x3 s2 72 + BN 16, MAdds 72*16; 1x1 48 + BN 12, 48*16
    params = 40 + 216 + 110 + 94 + 24 + 108 + 88 + 60
    madds = 2048 + 12800 + 1440 + 80 + 320 + 1600 + 1152 + 768
    assert (t.params, t.madds) == (params, madds)
    kinds = [n.kind for n in spec.compile()]
    assert kinds.count("slice") == 1 and kinds.count("concat") == 2


def test_ghost_bottleneck_identity_shortcut():
    graph = _tiny("{block: ghost, exp: 16, c: 8}").compile()
    names = [n.name for n in graph]
    assert not any(".shortcut." in n for n in names)
    add = graph["stages.0.block0.add"]
    assert add.inputs[0] == "input"


# GhostNet 1.0x / 0.5x / 1.3x as timm builds them (ghostnet_100/_050/_130, pretrained=False):
# params = sum of parameter sizes, MAdds = FlopCounterMode total / 2, at 224 and 160.
TIMM = [(1.0, 224, 5_182_508, 141_150_512), (1.0, 160, 5_182_508, 73_978_544),
        (0.5, 224, 2_587_292, 42_328_152), (1.3, 160, 7_358_820, 118_469_688)]


@pytest.mark.parametrize("width,resolution,params,madds", TIMM)
def test_ghostnet_reproduces_timm(width, resolution, params, madds):
    t = archspec.load(GHOSTNET, width=width, resolution=resolution).cost().totals
    assert (t.params, t.madds) == (params, madds)


@pytest.mark.parametrize("resolution", [224, 96])
def test_ghostnet_torch_model_matches_the_cost(resolution):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archspec.backends import get_backend

    graph = archspec.load(GHOSTNET, resolution=resolution).compile()
    model = get_backend("torch").build(graph).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    totals = archspec.analysis.cost.cost(graph).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert counter.get_total_flops() == 2 * totals.madds


def test_ghostnet_onnxruntime_equals_torch():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np

    from archspec.backends import get_backend
    from conftest import onnx_and_torch_outputs, randomise_bn

    graph = archspec.load(GHOSTNET, resolution=64).compile()
    model = randomise_bn(get_backend("torch").build(graph, seed=0).eval())
    got, want = onnx_and_torch_outputs(graph, model)
    assert np.abs(want).max() > 1e-2
    assert np.abs(got - want).max() < 1e-4
