"""archspec.load / archspec.sources.load: every kind of source (YAML path, shipped name,
.pt written by `build` or `train`, ONNX exported by archspec, in fp16, carrying its spec,
or written by torch.onnx.export) loads, costs and takes the overrides it can; the CLI's
cost, sweep, plot and diff take each of them with exit 0 or a located exit 2, never 3;
damaged and hostile files are located errors."""
from __future__ import annotations

import json
import pickle
import shutil
import warnings

import pytest

import archspec
from archspec import sources
from archspec.analysis.cost import cost
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.spec.loader import SHIPPED

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from archspec.backends import get_backend, torch_io  # noqa: E402
from archspec.backends.onnx_lower import folded_params  # noqa: E402
from archspec.onnx_import import OnnxSource, embed_spec  # noqa: E402
from archspec.train import checkpoint  # noqa: E402

SMALL = {"resolution": 64}
V3S = SHIPPED / "mobilenetv3_small.yaml"
CIFAR = SHIPPED / "mobilenetv2_cifar.yaml"


# ---- the files ------------------------------------------------------------------------------
def _onnx(graph, path, spec=None, **options):
    backend = get_backend("onnx")
    proto = backend.build(graph, seed=0, check=False, **options).proto
    if spec is not None:
        proto = embed_spec(proto, spec, graph)
    onnx.save(proto, str(path))
    return path


def _torch_export(graph, path):
    model = get_backend("torch").build(graph, seed=0).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}})
    return path


def _trained(path):
    """A best.pt as `archspec train` writes it (the same writer, without the training)."""
    spec = archspec.load(CIFAR, classes=10)
    graph = spec.compile()
    overrides = {k: graph.meta[k] for k in ("resolution", "width", "classes")}
    config = {"spec": str(CIFAR), "data": "digits", "seed": 0, "limit_batches": None,
              "overrides": overrides, "recipe": {}}
    checkpoint.save(path, get_backend("torch").build(graph, seed=0), torch_io.spec_text(CIFAR),
                    overrides, {"kind": "best", "epoch": 1, "config": config,
                                "best": {"val_acc": 0.5, "epoch": 1}, "record": {}})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    spec = archspec.load(V3S, **SMALL)
    graph = spec.compile()
    torch_backend = get_backend("torch")
    torch_backend.save(torch_backend.build(graph, seed=0), d / "v3s.pt", V3S, graph)
    return {
        "yaml": V3S,
        "shipped": "mobilenetv3_small",
        "build.pt": d / "v3s.pt",
        "train.pt": _trained(d / "best.pt"),
        "onnx": _onnx(graph, d / "v3s.onnx"),
        "fp16.onnx": _onnx(graph, d / "v3s16.onnx", fp16=True),
        "spec.onnx": _onnx(graph, d / "v3s_spec.onnx", spec=V3S),
        "torch.onnx": _torch_export(graph, d / "v3s_torch.onnx"),
    }


# ---- loading --------------------------------------------------------------------------------
def test_every_kind_loads_and_costs(files):
    graph = archspec.load(V3S, **SMALL).compile()
    want = cost(graph).totals
    for kind, source in files.items():
        s = sources.load(source)
        report = s.cost()
        assert s.name and report.totals.madds > 0, kind
        if kind == "train.pt":
            assert report.totals.params == cost(archspec.load(CIFAR, classes=10)
                                                .compile()).totals.params
        elif kind.endswith(".pt"):
            assert (report.totals.params, report.totals.madds) == (want.params, want.madds)
        elif kind.endswith(".onnx"):
            assert isinstance(s, OnnxSource)
            assert report.totals.madds == want.madds, kind
            assert report.totals.params == folded_params(graph), kind


def test_archspec_load_is_sources_load(files):
    s = archspec.load(files["build.pt"], width=0.5)
    assert s.cost().totals.params == archspec.load(V3S, width=0.5, **SMALL).cost().totals.params


def test_checkpoint_spec_keeps_its_overrides_and_takes_new_ones(files):
    s = sources.load(files["build.pt"])
    assert (s.resolution, s.width, s.classes) == (64, 1.0, 1000)
    assert str(s.file).endswith("v3s.pt#spec")
    s = sources.load(files["build.pt"], width=0.5, resolution=96, classes=10)
    want = archspec.load(V3S, width=0.5, resolution=96, classes=10).cost().totals
    got = s.cost().totals
    assert (got.params, got.madds) == (want.params, want.madds)


def test_run_folder_means_its_last_pt(files, tmp_path):
    shutil.copy(files["train.pt"], tmp_path / "last.pt")
    assert sources.load(tmp_path).name == "mobilenetv2_cifar"


def test_kind_is_read_from_the_bytes_without_a_suffix(files, tmp_path):
    shutil.copy(files["build.pt"], tmp_path / "model")
    shutil.copy(files["onnx"], tmp_path / "graph")
    assert sources.load(tmp_path / "model").name == "mobilenetv3_small"
    assert isinstance(sources.load(tmp_path / "graph"), OnnxSource)
    (tmp_path / "blob").write_bytes(b"\x01\x02\x00\x03" * 10)
    with pytest.raises(ArchspecError, match="blob: binary file that is neither"):
        sources.load(tmp_path / "blob")


def test_a_saved_checkpoint_spec_saves_again(files, tmp_path):
    s = sources.load(files["build.pt"], width=0.5)
    graph = s.compile()
    backend = get_backend("torch")
    backend.save(backend.build(graph, seed=0), tmp_path / "half.pt", s, graph)
    again = sources.load(tmp_path / "half.pt")
    assert (again.width, again.resolution) == (0.5, 64)
    assert again.cost().totals.params == s.cost().totals.params


# ---- ONNX files -----------------------------------------------------------------------------
def test_onnx_byte_figures_use_the_file_dtype(files):
    fp32, fp16 = sources.load(files["onnx"]).cost(), sources.load(files["fp16.onnx"]).cost()
    assert (fp32.dtype, fp16.dtype) == ("fp32", "fp16")
    assert fp16.peak_bytes * 2 == fp32.peak_bytes
    assert fp16.totals.params == fp32.totals.params
    notes = sources.load(files["fp16.onnx"]).compile().meta["notes"]
    assert any("fp16" in n for n in notes)
    assert sources.load(files["fp16.onnx"]).cost(dtype="fp32").peak_bytes == fp32.peak_bytes


def test_onnx_classes_come_from_the_output(files, tmp_path):
    assert sources.load(files["torch.onnx"]).cost().classes == 1000
    graph = archspec.load(V3S, classes=7, **SMALL).compile()
    assert sources.load(_onnx(graph, tmp_path / "c7.onnx")).cost().classes == 7
    taps = _onnx(graph, tmp_path / "taps.onnx", features=["C4"])
    assert sources.load(taps).cost().classes is None  # a feature map is no class vector


def test_onnx_notes_say_why_params_differ(files, tmp_path):
    folded = sources.load(files["onnx"]).compile().meta["notes"]
    assert any("folded into their convs" in n for n in folded)
    foreign = sources.load(files["torch.onnx"]).compile().meta["notes"]
    assert any("no BatchNormalization node" in n for n in foreign)
    graph = archspec.load(V3S, **SMALL).compile()
    unfolded = sources.load(_onnx(graph, tmp_path / "u.onnx", fold_bn=False))
    assert unfolded.compile().meta["notes"] == []
    assert unfolded.cost().totals.params == cost(graph).totals.params


def test_onnx_resolution_override_reinfers_shapes(files):
    assert sources.load(files["onnx"]).resolution == 64
    for kind in ("onnx", "torch.onnx"):
        assert sources.load(files[kind], resolution=96).resolution == 96
        got = sources.load(files[kind], resolution=96).cost().totals.madds
        assert got == archspec.load(V3S, resolution=96).cost().totals.madds


def test_foreign_onnx_refuses_width_and_classes_with_a_reason(files):
    for flag in ("width", "classes"):
        with pytest.raises(ArchspecError, match=rf"v3s_torch.onnx: --{flag} does not apply"
                                                r".*carries no archspec spec"):
            sources.load(files["torch.onnx"], **{flag: 0.5 if flag == "width" else 10})
    with pytest.raises(ArchspecError, match="no stage table"):
        _ = sources.load(files["torch.onnx"]).stages


def test_onnx_carrying_its_spec_rebuilds_for_width(files):
    s = sources.load(files["spec.onnx"])
    assert isinstance(s, OnnxSource) and s.cost().totals.params == \
        sources.load(files["onnx"]).cost().totals.params  # the file as it is
    half = sources.load(files["spec.onnx"], width=0.5)
    want = archspec.load(V3S, width=0.5, **SMALL).cost().totals
    assert (half.cost().totals.params, half.cost().totals.madds) == (want.params, want.madds)
    assert sources.load(files["spec.onnx"], resolution=96, width=0.5).resolution == 96


def test_embed_spec_checks_the_spec_is_the_graph(tmp_path):
    graph = archspec.load(V3S, **SMALL).compile()
    proto = get_backend("onnx").build(graph, seed=0, check=False).proto
    with pytest.raises(ArchspecError, match="does not describe the graph"):
        embed_spec(proto, "mobilenetv2", graph)


def test_bad_override_values_are_located(files):
    with pytest.raises(ArchspecError, match="resolution.*got 0"):
        sources.load(files["onnx"], resolution=0)
    with pytest.raises(ArchspecError, match="resolution.*got 0"):
        sources.load(files["build.pt"], resolution=0)


# ---- damaged and hostile files ------------------------------------------------------------
def test_damaged_checkpoints_are_located_errors(files, tmp_path):
    data = files["build.pt"].read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "spec.pt").write_text(V3S.read_text())
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage\xff\xff")
    cases = {"cut.pt": "not a readable archspec torch file",
             "spec.pt": "not an archspec torch file: it is a text file",
             "junk.onnx": "not a readable ONNX file|expected one image input"}
    for name, message in cases.items():
        with pytest.raises(ArchspecError, match=message) as e:
            sources.load(tmp_path / name).compile()
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)


class Evil:
    def __reduce__(self):
        return (print, ("the pickle ran",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": torch_io.FORMAT, "spec": Evil()}, path)
    with pytest.raises(ArchspecError, match="safe loader refuses"):
        sources.load(path)
    bare = tmp_path / "evil"  # a bare pickle without a suffix: known by its first byte
    bare.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(ArchspecError, match="safe loader refuses"):
        sources.load(bare)
    assert "the pickle ran" not in capsys.readouterr().out


def _resave(source, path, change):
    payload = torch.load(source, weights_only=True)
    change(payload)
    if all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        payload["sha256"] = torch_io.digest(payload)
    torch.save(payload, path)
    return path


def test_edited_fields_are_located_errors(files, tmp_path):
    edits = {
        "overrides": lambda p: p.update(overrides={"width": "wide"}),
        "state_dict": lambda p: p["state_dict"].update(extra=[1, 2]),
        "embedded spec": lambda p: p.update(spec="name: x\nstages: 3\n"),
    }
    for what, change in edits.items():
        path = _resave(files["build.pt"], tmp_path / "e.pt", change)
        with pytest.raises(ArchspecError) as e:
            sources.load(path).compile()
        assert str(e.value).startswith(str(path)), what


def test_edited_training_field_is_a_checkpoint_error(files, tmp_path):
    payload = torch.load(files["train.pt"], weights_only=True)
    payload["training"]["config"]["seed"] = "zero"
    torch.save(payload, tmp_path / "t.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"training.config.seed"):
        checkpoint.read(tmp_path / "t.pt")


def test_a_spec_is_not_a_checkpoint(files):
    with pytest.raises(checkpoint.CheckpointError, match="this is a spec .*not a checkpoint"):
        checkpoint.read(CIFAR)
    with pytest.raises(checkpoint.CheckpointError, match="not a checkpoint: it is an ONNX"):
        checkpoint.read(files["onnx"])


# ---- the command line -----------------------------------------------------------------------
def _cli(capsys, *args):
    """(exit code, stdout, stderr) of `archspec ARGS` run in this process."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def _commands(source, tmp_path):
    return {"cost": ["cost", source, "-f", "json"],
            "sweep": ["sweep", source, "--width", "0.5,1", "-f", "json"],
            "plot": ["plot", source, "-o", tmp_path / "depth.png"],
            "diff": ["diff", "mobilenetv3_small", source, "-f", "json"]}


REFUSED = {("torch.onnx", "sweep"), ("onnx", "sweep"), ("fp16.onnx", "sweep")}


@pytest.mark.parametrize("kind", ["yaml", "shipped", "build.pt", "train.pt", "onnx",
                                  "fp16.onnx", "spec.onnx", "torch.onnx"])
def test_cli_takes_every_kind(kind, files, tmp_path, capsys):
    for command, args in _commands(files[kind], tmp_path).items():
        code, out, err = _cli(capsys, *args)
        if (kind, command) in REFUSED:  # a width sweep of a file without its spec
            assert code == 2, (command, err)
            assert err.startswith(f"archspec: {files[kind]}: --width does not apply"), err
            assert len(err.strip().splitlines()) == 1
        else:
            assert code == 0, (kind, command, err)
    assert (tmp_path / "depth.png").stat().st_size > 0


def test_cli_sweep_of_a_checkpoint_varies_its_spec(files, tmp_path, capsys):
    code, out, err = _cli(capsys, "sweep", files["build.pt"], "--width", "0.5,1", "-o",
                          tmp_path / "s.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    want = {w: archspec.load(V3S, width=w, **SMALL).cost().totals.params for w in (0.5, 1.0)}
    assert {r["width"]: r["params"] for r in rows} == want


def test_cli_eval_of_a_spec_says_what_to_give(capsys):
    code, out, err = _cli(capsys, "eval", CIFAR, "--data", "digits")
    assert code == 2 and "this is a spec (YAML text), not a checkpoint" in err
    assert "weights_only" not in err and "Traceback" not in err


def test_cli_onnx_build_carries_its_spec_and_cost_says_why_params_differ(tmp_path, capsys):
    path = tmp_path / "v3s.onnx"
    code, _, err = _cli(capsys, "build", V3S, "-r", "64", "--backend", "onnx", "-o", path)
    assert code == 0, err
    code, out, err = _cli(capsys, "cost", path, "--width", "0.5", "-f", "json")
    assert code == 0, err  # rebuilt from the embedded spec, not refused
    want = archspec.load(V3S, width=0.5, resolution=64).cost().totals
    assert json.loads(out)["totals"]["params"] == want.params
    code, out, err = _cli(capsys, "cost", path, "-f", "json")
    doc = json.loads(out)
    assert any("folded into their convs" in n for n in doc["notes"])
    assert doc["totals"]["params"] < archspec.load(V3S, resolution=64).cost().totals.params
    code, out, err = _cli(capsys, "cost", path, "-f", "markdown")
    assert "note: params count the tensors in this file" in out


def test_cli_costs_an_fp16_file_in_fp16_unless_told(files, capsys):
    code, out, err = _cli(capsys, "cost", files["fp16.onnx"], "-f", "json")
    assert code == 0, err
    half = json.loads(out)
    code, out, err = _cli(capsys, "cost", files["fp16.onnx"], "-f", "json", "--dtype", "fp32")
    full = json.loads(out)
    assert (half["dtype"], full["dtype"]) == ("fp16", "fp32")
    assert 2 * half["memory"]["peak_bytes"] == full["memory"]["peak_bytes"]
    code, out, err = _cli(capsys, "memory", files["fp16.onnx"], "-f", "json")
    assert code == 0 and json.loads(out)["dtype"] == "fp16", err


@pytest.mark.parametrize("kind", ["yaml", "shipped", "build.pt", "train.pt", "onnx",
                                  "fp16.onnx", "spec.onnx", "torch.onnx"])
def test_validate_and_bench_take_every_kind(kind, files, capsys):
    code, out, err = _cli(capsys, "validate", files[kind])
    assert code == 0 and out.startswith("ok"), (kind, err)
    code, out, err = _cli(capsys, "bench", files[kind], "--repeats", "1", "--warmup", "0",
                          "-r", "32", "-f", "json")
    assert code == 0, (kind, err)
    doc = json.loads(out)
    assert doc["classes"] == sources.load(files[kind]).cost().classes  # 10 after digits
    assert doc["width"] is not None


def test_build_from_an_onnx_file_builds_the_spec_it_carries(files, tmp_path, capsys):
    code, _, err = _cli(capsys, "build", files["spec.onnx"], "--backend", "torch", "-o",
                        tmp_path / "x.pt")
    assert code == 0, err
    want = archspec.load(V3S, **SMALL).cost().totals.params  # BN unfolded again
    assert sources.load(tmp_path / "x.pt").cost().totals.params == want
