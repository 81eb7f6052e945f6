"""Foreign weights (`build --weights-from`): torchvision's and timm's state dicts loaded by
position into the shipped specs named after them.

The state dicts are written here from the layouts in tests/data/*_layout.json (every key,
shape and dtype of the reference model's state dict, in order, recorded by
scripts/state_dict_layout.py from torchvision 0.29.1 / timm 1.0.31), filled with random
values: no torchvision or timm needed.
"""
import argparse
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.backends import get_backend, torch_weights  # noqa: E402
from archspec.errors import BackendError  # noqa: E402
from conftest import SPECS, run_cli  # noqa: E402

DATA = Path(__file__).parent / "data"
LAYOUTS = sorted(DATA.glob("*_layout.json"))
COUNTER = "num_batches_tracked"


def layout(name: str) -> dict:
    return json.loads((DATA / f"{name}_layout.json").read_text())


def state_from(doc: dict, seed: int = 0) -> dict:
    """A state dict in the layout's keys, shapes and dtypes, with random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in doc["tensors"]:
        kind = getattr(torch, dtype)
        state[key] = torch.randn(shape, generator=gen).to(kind) if kind.is_floating_point \
            else torch.randint(0, 100, shape, generator=gen, dtype=kind)
    return state


def save(tmp_path, payload, name="weights.pth") -> Path:
    path = tmp_path / name
    torch.save(payload, path)
    return path


def weights(state: dict) -> list:
    """(key, tensor) of a state dict in order, without the BN counters."""
    return [(k, v) for k, v in state.items() if not k.endswith(COUNTER)]


def test_layouts_present():
    names = {p.name.removesuffix("_layout.json") for p in LAYOUTS}
    assert {"torchvision_mobilenet_v2", "torchvision_mobilenet_v3_large",
            "torchvision_mobilenet_v3_small", "timm_mobilenetv3_large_100",
            "timm_efficientnet_b0"} <= names


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.stem)
def test_reference_layout_loads_by_position(path, tmp_path):
    doc = json.loads(path.read_text())
    state = state_from(doc)
    model, report = torch_weights.build(archspec.load(doc["spec"]), save(tmp_path, state))
    theirs, ours = weights(state), weights(model.state_dict())
    assert len(ours) == len(theirs) == report.loaded
    for (their_key, value), (our_key, mine), source in zip(theirs, ours, report.sources):
        assert source.key == their_key
        assert torch.equal(mine.flatten(), value.flatten()), (their_key, our_key)
    reshaped = [theirs[i][0] for i in sorted(report.reshaped)]
    # torchvision's MobileNetV3 ends in Linear(960, 1280), the spec in a 1x1 conv after the
    # pool (as the paper and timm): the one reshape; everything else has equal shapes
    expected = ["classifier.0.weight"] if doc["model"].startswith("mobilenet_v3") \
        and doc["library"] == "torchvision" else []
    assert reshaped == expected
    assert report.stopped is None and report.unused == []


def test_counters_are_not_needed(tmp_path):
    """A file without num_batches_tracked (older torch, converted weights) loads the same."""
    state = state_from(layout("torchvision_mobilenet_v2"))
    bare = {k: v for k, v in state.items() if not k.endswith(COUNTER)}
    spec = archspec.load("mobilenetv2")
    full, _ = torch_weights.build(spec, save(tmp_path, state, "a.pth"))
    without, _ = torch_weights.build(spec, save(tmp_path, bare, "b.pth"))
    for (k, a), (_, b) in zip(full.state_dict().items(), without.state_dict().items()):
        assert torch.equal(a, b), k


def test_shape_mismatch_names_both_tensors(tmp_path):
    state = state_from(layout("torchvision_mobilenet_v2"))
    keys = [k for k, _ in weights(state)]
    at = keys.index("features.6.conv.1.0.weight")  # a depthwise conv, 192 channels
    state[keys[at]] = torch.randn(200, 1, 3, 3)
    ours = weights(archspec.build("mobilenetv2").state_dict())[at]
    with pytest.raises(BackendError) as e:
        torch_weights.build(archspec.load("mobilenetv2"), save(tmp_path, state))
    message = str(e.value)
    assert f"tensor {at + 1} of {len(keys)}" in message
    assert "features.6.conv.1.0.weight (200, 1, 3, 3)" in message
    assert f"{ours[0]} {tuple(ours[1].shape)}" in message and "\n" not in message


def test_linear_into_a_conv_only_on_a_one_pixel_map(tmp_path):
    """A 2-d weight where the spec has a 1x1 conv on a 56x56 map is a mismatch, not a
    reshape (that conv is no Linear)."""
    state = state_from(layout("torchvision_mobilenet_v2"))
    key = "features.2.conv.0.0.weight"  # the expansion 1x1 conv of the first 24-wide block
    assert state[key].shape == (96, 16, 1, 1)
    state[key] = state[key].reshape(96, 16)
    with pytest.raises(BackendError, match=r"features\.2\.conv\.0\.0\.weight \(96, 16\) "
                                           r"does not fit ours stages\.2\.block0\.expand"):
        torch_weights.build(archspec.load("mobilenetv2"), save(tmp_path, state))


def modified_spec(tmp_path) -> Path:
    """MobileNetV2 with the 96-wide row (row 5) made 128 wide."""
    path = tmp_path / "wider.yaml"
    path.write_text(f"extends: {SPECS / 'mobilenetv2.yaml'}\nname: wider\n"
                    "patch:\n  - {rows: 5, set: {c: 128}}\n")
    return path


def test_partial_loads_the_matching_prefix(tmp_path):
    state = state_from(layout("torchvision_mobilenet_v2"))
    spec = archspec.load(modified_spec(tmp_path))
    fresh = weights(archspec.build(spec, seed=3).state_dict())
    original = weights(archspec.build("mobilenetv2").state_dict())
    first_change = next(i for i, ((_, a), (_, b)) in enumerate(zip(fresh, original))
                        if a.shape != b.shape)
    path = save(tmp_path, state)
    with pytest.raises(BackendError, match=f"tensor {first_change + 1} of"):
        torch_weights.build(spec, path, seed=3)
    model, report = torch_weights.build(spec, path, partial=True, seed=3)
    ours, theirs = weights(model.state_dict()), weights(state)
    assert report.loaded == first_change > 0
    for i, (key, value) in enumerate(ours):
        expected = theirs[i][1] if i < first_change else fresh[i][1]
        assert torch.equal(value, expected), key
    assert report.stopped["position"] == first_change + 1
    assert [t.key for t in report.unused] == [k for k, _ in theirs[first_change:]]


def cli(capsys, *args) -> tuple:
    """(exit code, stdout, stderr) of `archspec ARGS` run in this process."""
    from archspec.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_partial_report_from_the_command_line(tmp_path, capsys):
    state = state_from(layout("torchvision_mobilenet_v2"))
    path = save(tmp_path, state)
    args = ("build", "mobilenetv2", "--classes", "10", "--weights-from", path, "--partial")
    code, out, err = cli(capsys, *args, "-f", "json", "-o", tmp_path / "ours.pt")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "archspec.weights/1" and doc["partial"] is True
    assert doc["counts"] == {"file": 262, "model": 262, "loaded": 260, "random": 2,
                             "unused": 2}
    assert [t["key"] for t in doc["tensors"] if t["status"] == "random"] == \
        ["head.2.fc.weight", "head.2.fc.bias"]
    assert doc["stopped"]["file_key"] == "classifier.1.weight"
    assert doc["stopped"]["model_shape"] == [10, 1280]
    saved = get_backend("torch").load(tmp_path / "ours.pt").state_dict()  # what -o wrote
    assert torch.equal(saved["head.0.conv.weight"], state["features.18.0.weight"])
    assert saved["head.2.fc.weight"].shape == (10, 1280)
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "2 left at random" in out and "0 (random)" in out


def test_wrapped_checkpoints(tmp_path):
    """timm's and torchvision's training checkpoints: the weights under a key, `args` an
    argparse.Namespace (allowed by the safe loader), EMA weights preferred as timm does."""
    state = state_from(layout("torchvision_mobilenet_v2"))
    ema = state_from(layout("torchvision_mobilenet_v2"), seed=1)
    checkpoint = {"epoch": 3, "arch": "mobilenet_v2", "state_dict": state,
                  "state_dict_ema": ema, "args": argparse.Namespace(lr=0.1), "optimizer": {}}
    model = archspec.build("mobilenetv2")
    graph = archspec.load("mobilenetv2").compile()
    report = torch_weights.load_foreign(model, graph, save(tmp_path, checkpoint))
    assert report.key == "state_dict_ema"
    assert torch.equal(model.state_dict()["stages.0.block0.conv.weight"],
                       ema["features.0.0.weight"])
    report = torch_weights.load_foreign(model, graph, save(tmp_path, {"model": state}))
    assert report.key == "model"


def bad_files(tmp_path) -> dict:
    """Files that are not state dicts, and the words the error must contain."""
    text = tmp_path / "spec.yaml"
    text.write_text("name: x\n")
    good = save(tmp_path, {"w": torch.zeros(2)}, "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:200])
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    safetensors = tmp_path / "model.safetensors"
    safetensors.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(8))
    (tmp_path / "nothing.pth").write_bytes(b"")
    (tmp_path / "random.pth").write_bytes(bytes(range(1, 256)) * 4)
    import zipfile
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("a.txt", "not a checkpoint")
    return {
        tmp_path / "nothing.pth": "not a torch state dict: the file is empty",
        tmp_path / "random.pth": "it is not a torch file (its first bytes are neither a zip",
        tmp_path / "other.zip": "a zip archive that is not a torch checkpoint",
        save(tmp_path, {}, "nodict.pth"): "the file holds an empty dict, no tensors",
        save(tmp_path, {"note": "x"}, "strings.pth"): "a dict with keys note, no tensors",
        tmp_path / "missing.pth": "file not found",
        tmp_path: "a directory",
        text: "not a torch state dict: it is a text file",
        truncated: "not a readable state dict",
        safetensors: "safetensors",
        save(tmp_path, torch.nn.Linear(2, 2), "module.pth"): "torch.nn.modules.linear.Linear",
        save(tmp_path, [torch.zeros(2)], "list.pth"): "holds a list",
        save(tmp_path, {"epoch": 1}, "empty.pth"): "a dict with keys epoch",
        save(tmp_path, {"state_dict": {"w": 1}}, "inner.pth"): "`w` is a int, not a tensor",
    }


def test_bad_files_are_one_line_errors(tmp_path):
    for path, words in bad_files(tmp_path).items():
        with pytest.raises(BackendError) as e:
            torch_weights.read_foreign(path, f"--weights-from {path}")
        assert str(e.value).startswith(f"--weights-from {path}: "), str(e.value)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_command_line_exits_2(tmp_path):
    path = save(tmp_path, state_from(layout("torchvision_mobilenet_v2")))
    r = run_cli("build", "mobilenetv2", "--width", "0.5", "--weights-from", path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"archspec: --weights-from {path}: tensor 1 of 262: the file's "
                        "features.0.0.weight (32, 3, 3, 3) does not fit ours "
                        "stages.0.block0.conv.weight (16, 3, 3, 3) (nothing before it fits "
                        "either: is it the right spec?)\n")


def test_command_line_bad_file(tmp_path, capsys):
    files = bad_files(tmp_path)
    for name in ("truncated.pth", "module.pth", "spec.yaml"):
        path = next(p for p in files if p.name == name)
        code, out, err = cli(capsys, "build", "mobilenetv2", "--weights-from", path)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err.startswith(f"archspec: --weights-from {path}: ") and files[path] in err


def test_partial_that_loads_nothing_is_an_error(tmp_path, capsys):
    """--partial with a file none of whose tensors fit: exit 2 naming both first tensors,
    and no model written (it would be all random)."""
    path = save(tmp_path, {"a": torch.zeros(3)}, "wrong.pth")
    out = tmp_path / "out.pt"
    code, stdout, err = cli(capsys, "build", "mobilenetv2", "--weights-from", path,
                            "--partial", "-o", out)
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    assert (f"--weights-from {path}: no tensor of the file fits the first tensor of "
            "mobilenetv2: theirs a (3,) vs ours stages.0.block0.conv.weight (32, 3, 3, 3)"
            ) in err
    assert not out.exists()


def test_options_that_need_weights_from(capsys):
    code, _, err = cli(capsys, "build", "mobilenetv2", "--partial")
    assert code == 2 and "--partial applies to --weights-from" in err
    code, _, err = cli(capsys, "build", "mobilenetv2", "--backend", "onnx", "--weights-from",
                       "x.pth")
    assert code == 2 and "does not take --weights-from" in err


def test_python_api_loads_like_the_command(tmp_path):
    """archspec.build(..., weights_from=) gives the tensors the file holds, in order, and the
    load report in the model's meta."""
    state = state_from(layout("torchvision_mobilenet_v2"), seed=3)
    path = save(tmp_path, state)
    model = archspec.build("mobilenetv2", backend="torch", weights_from=path)
    for (_, ours), (_, theirs) in zip(weights(model.state_dict()), weights(state)):
        assert torch.equal(ours, theirs)
    report = model.meta["archspec"]["weights"]
    assert report["counts"]["loaded"] == len(weights(state)) and report["file"] == str(path)
