"""Training: datasets and their errors, recipes and schedules, augmentation, the CLI run
(metrics, checkpoints, plot, eval), bit-for-bit resume, NaN, and DDP with torchrun (gloo).

Runs are tiny (MobileNetV2-CIFAR at width 0.35, 16 px, a few batches) and single-threaded:
on a shared 2-core machine several torch threads per process only wait for each other."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from archspec.train import TrainConfig, train  # noqa: E402
from archspec.train import data as D  # noqa: E402
from archspec.train.recipes import (RecipeError, learning_rate, load_recipe,  # noqa: E402
                                    recipe_from_dict, shipped)

TINY = ["mobilenetv2_cifar", "-w", "0.35", "-r", "16"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "archspec", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=ENV)


def tiny(tmp_path, **kw):
    base = dict(spec="mobilenetv2_cifar", data="digits", width=0.35, resolution=16,
                quiet=True, plot=False, out=str(tmp_path / "run"))
    return TrainConfig(**{**base, **kw})


# ---- datasets -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("cifar11:/x", "did you mean `cifar10`"),
    ("cifar10", "needs the folder"),
    ("digits:/x", "takes no path"),
    ("synthetic:one", "whole number"),
])
def test_bad_data_argument(text, message):
    with pytest.raises(D.DataError, match=message):
        D.parse_source(text)


def test_missing_and_malformed_cifar(tmp_path):
    with pytest.raises(D.DataError, match="no such folder.*data_batch_1"):
        D.load_split(D.parse_source(f"cifar10:{tmp_path}/nope"), "train", resolution=32,
                     classes=10)
    with pytest.raises(D.DataError, match="data_batch_1 is missing"):
        D.load_split(D.parse_source(f"cifar10:{tmp_path}"), "train", resolution=32, classes=10)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(D.DataError, match="test_batch: not a readable CIFAR batch"):
        D.load_split(D.parse_source(f"cifar10:{tmp_path}"), "val", resolution=32, classes=10)
    # a pickle that would run code is refused, not executed
    (tmp_path / "test_batch").write_bytes(pickle.dumps(os.getcwd))
    with pytest.raises(D.DataError, match="refusing"):
        D.load_split(D.parse_source(f"cifar10:{tmp_path}"), "val", resolution=32, classes=10)


def fake_cifar(root, n=40, kind="cifar10"):
    import numpy as np

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    names = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]) if kind == "cifar10" \
        else ["train", "test"]
    key = b"labels" if kind == "cifar10" else b"fine_labels"
    for name in names:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: rng.integers(0, 10 if kind == "cifar10" else 100, n).tolist()}
        (root / name).write_bytes(pickle.dumps(batch))
    return root


def test_cifar_layout_trains(tmp_path):
    root = fake_cifar(tmp_path / "cifar-10-batches-py")
    train_set = D.load_split(D.parse_source(f"cifar10:{root}"), "train", resolution=32,
                             classes=10)
    assert len(train_set) == 200 and train_set.images.shape[1:] == (3, 32, 32)
    result = train(tiny(tmp_path, data=f"cifar10:{root}", epochs=1, batch_size=20,
                        limit_batches=2))
    assert result.records[0]["images"] == 40


def test_cifar100_layout(tmp_path):
    root = fake_cifar(tmp_path / "cifar-100-python", kind="cifar100")
    val = D.load_split(D.parse_source(f"cifar100:{root}"), "val", resolution=32, classes=100)
    assert val.classes == 100 and len(val) == 40


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (24 + i, 20), colour).save(tmp_path / split / c / f"{i}.png")
    source = D.parse_source(f"imagefolder:{tmp_path}")
    ds = D.load_split(source, "train", resolution=16, classes=2)
    ds.configure(augment=load_recipe("imagenet").augment, resolution=16, seed=0, device="cpu")
    x, y = ds[5]
    assert x.shape == (3, 16, 16) and y == 1
    result = train(tiny(tmp_path, data=f"imagefolder:{tmp_path}", epochs=1, batch_size=4,
                        recipe="imagenet", workers=0, out=str(tmp_path / "r")))
    assert result.records[0]["images"] == 8
    shutil.rmtree(tmp_path / "val" / "dog")
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(D.DataError, match="class folder `bird`.*ROOT/train/<class>"):
        D.load_split(source, "val", resolution=16, classes=2)


def test_missing_imagefolder(tmp_path):
    with pytest.raises(D.DataError, match="no class folders.*ROOT/train/<class>"):
        D.load_split(D.parse_source(f"imagefolder:{tmp_path}"), "train", resolution=16,
                     classes=2)


def test_digits_split_is_fixed_and_disjoint():
    tr = D.load_split(D.parse_source("digits"), "train", resolution=16, classes=10)
    va = D.load_split(D.parse_source("digits"), "val", resolution=16, classes=10)
    assert (len(tr), len(va)) == (1437, 360) and tr.images.shape[1:] == (3, 16, 16)


# ---- augmentation -------------------------------------------------------------------------
def test_pad_crop_flip_matches_slicing():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    offsets, flips = torch.tensor([[0, 4], [2, 1]]), torch.tensor([False, True])
    out = D.pad_crop_flip(x, offsets, flips, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert torch.equal(out[0], padded[0, :, 0:6, 4:10])
    assert torch.equal(out[1], padded[1, :, 2:8, 1:7].flip(-1))


def test_resized_crop_box_in_bounds():
    for i in range(50):
        top, left, h, w = D.resized_crop_box(30, 40, (0.08, 1.0), (3 / 4, 4 / 3),
                                             D.generator(0, i))
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 40 and h * w > 0


# ---- recipes ------------------------------------------------------------------------------
def test_shipped_recipes_load():
    names = shipped()
    assert {"cifar", "mobilenetv2", "mobilenetv3", "mobilenext", "rexnet", "digits"} <= set(names)
    note = load_recipe("cifar")
    assert (note.batch_size, note.optimizer.name, note.optimizer.weight_decay) == \
        (50, "sgd", 1e-4)
    assert load_recipe("mobilenetv2").optimizer.name == "rmsprop"
    assert load_recipe("mobilenetv3").ema.decay == 0.9999


def test_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="did you mean `weight_decay`"):
        recipe_from_dict({"optimizer": {"weight_decy": 1e-4}})
    with pytest.raises(RecipeError, match="did you mean `cosine`"):
        recipe_from_dict({"schedule": {"name": "cosin"}})
    with pytest.raises(RecipeError, match="unknown recipe `cifr`.*did you mean `cifar`"):
        load_recipe("cifr")
    with pytest.raises(RecipeError, match="must be a int"):
        recipe_from_dict({"epochs": "ten"})


def test_schedules():
    r = recipe_from_dict({"epochs": 10, "optimizer": {"lr": 1.0},
                          "schedule": {"name": "cosine", "warmup_epochs": 2}})
    assert learning_rate(r, 0, 0, 10) == pytest.approx(0.05)  # 1/20 of warm-up done
    assert learning_rate(r, 1, 9, 10) == pytest.approx(1.0)
    assert learning_rate(r, 6, 0, 10) == pytest.approx(0.5)
    assert learning_rate(r, 9, 9, 10) < 0.01
    step = r.with_(schedule=r.schedule.__class__(name="step", milestones=(3, 6), gamma=0.1))
    assert [round(learning_rate(step, e, 0, 10), 6) for e in (2, 3, 6)] == [1.0, 0.1, 0.01]
    exp = r.with_(schedule=r.schedule.__class__(name="exponential", gamma=0.98))
    assert learning_rate(exp, 5, 3, 10) == pytest.approx(0.98 ** 5)


# ---- runs ---------------------------------------------------------------------------------
def test_digits_cli_run_reaches_90_percent_and_eval(tmp_path):
    """Acceptance: mobilenetv2_cifar on digits, fixed seed, 3 epochs: >= 90% val accuracy."""
    out = tmp_path / "run"
    r = cli("train", *TINY, "--data", "digits", "--epochs", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "epoch 3/3" in r.stderr and "img/s" in r.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in records] == [1, 2, 3]
    best = max(x["val_acc"] for x in records)
    assert best >= 0.90, records
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*tmp"))
    for name in ("best.pt", "last.pt"):
        ck = torch.load(out / name, weights_only=True)
        assert ck["training"]["kind"] == name[:-3]
    from archspec.backends import get_backend

    assert get_backend("torch").load(out / "best.pt") is not None
    r = cli("eval", out / "best.pt", "--data", "digits", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["top1"] == pytest.approx(best)
    r = cli("eval", out / "best.pt", "--data", "digits")
    assert "top-1" in r.stdout
    r = cli("train", *TINY, "--data", "digits", "--out", out)
    assert r.returncode == 2 and "already holds a run" in r.stderr


RECIPE = """
epochs: 2
batch_size: 16
optimizer: {name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
schedule: {name: cosine, warmup_epochs: 0.5}
label_smoothing: 0.1
augment: {crop: pad, padding: 2, flip: true}
ema: {decay: 0.99}
"""


def test_resume_is_bit_for_bit(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    kw = dict(recipe=str(tmp_path / "r.yaml"), epochs=2, limit_batches=5)
    straight = train(tiny(tmp_path, out=str(tmp_path / "a"), **kw))
    train(tiny(tmp_path, out=str(tmp_path / "b"), stop_after=1, **kw))
    resumed = train(TrainConfig(resume=str(tmp_path / "b"), quiet=True, plot=False))
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for key, tensor in a["training"]["ema"]["state"].items():
        assert torch.equal(tensor, b["training"]["ema"]["state"][key]), key
    timing = {"images_per_s", "epoch_s"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in straight.records]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in resumed.records]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_resume_refuses_changes(tmp_path):
    train(tiny(tmp_path, epochs=1, limit_batches=1))
    r = cli("train", "--resume", tmp_path / "run", "--lr", "0.5", "-q")
    assert r.returncode == 2 and "cannot change when resuming" in r.stderr
    r = cli("train", "--resume", tmp_path / "run" / "best.pt", "-q")
    assert r.returncode == 2 and "not a resumable checkpoint" in r.stderr


def test_nan_loss_stops_clearly(tmp_path):
    (tmp_path / "r.yaml").write_text("optimizer: {lr: 1.0e+30}\nbatch_size: 16\n")
    r = cli("train", *TINY, "--data", "synthetic:64", "--recipe", tmp_path / "r.yaml",
            "--out", tmp_path / "run", "-q", "--epochs", "2")
    assert r.returncode == 2 and "training diverged" in r.stderr, r.stderr


def test_missing_data_is_exit_2(tmp_path):
    r = cli("train", *TINY, "--data", f"cifar10:{tmp_path}/none", "--out", tmp_path / "r")
    assert r.returncode == 2 and "no such folder" in r.stderr and "data_batch_1" in r.stderr


def test_ddp_two_processes_match_one(tmp_path):
    """torchrun, 2 processes on gloo: same global batch and data as one process; only
    batch-norm statistics (per process) differ, so the results agree within tolerance."""
    args = ["train", *TINY, "--data", "digits", "--epochs", "1", "--limit-batches", "12",
            "--no-plot", "-q"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "archspec", *args,
                          "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, timeout=180, env=ENV)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = cli(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    a = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text())
    b = json.loads((tmp_path / "one" / "metrics.jsonl").read_text())
    assert (a["world_size"], b["world_size"]) == (2, 1)
    assert a["images"] == b["images"] == 12 * 32
    assert a["lr"] == b["lr"]
    assert a["train_loss"] == pytest.approx(b["train_loss"], abs=0.1)
    assert a["val_loss"] == pytest.approx(b["val_loss"], abs=0.25)


@pytest.mark.parametrize("spec", ["ssdlite320_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_head_specs_are_refused_before_any_data(tmp_path, spec):
    """A detection/segmentation spec is refused (exit 2) before its data is read: the
    missing CIFAR folder is never looked at, and nothing is written."""
    r = cli("train", spec, "--data", f"cifar10:{tmp_path}/none", "--epochs", "1",
            "--limit-batches", "1", "-o", tmp_path / "run")
    assert r.returncode == 2, r.stderr
    assert "training detection/segmentation heads is not supported yet" in r.stderr
    assert "no such folder" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_a_spec_without_classifier_is_refused(tmp_path):
    """`head: []`: the output is a feature map, which the classification loss cannot take."""
    spec = tmp_path / "nohead.yaml"
    spec.write_text("name: nohead\ninput: {resolution: 16}\nclasses: 10\nstages:\n"
                    "  - {block: conv, k: 3, c: 8, s: 2}\n  - {block: ir, t: 2, c: 16, s: 2}\n"
                    "head: []\n")
    r = cli("train", spec, "--data", f"cifar10:{tmp_path}/none", "-o", tmp_path / "run")
    assert r.returncode == 2, r.stderr
    assert f"{spec}: the output is a 16x4x4 feature map, not a vector of class scores" \
        in r.stderr
    assert not (tmp_path / "run").exists()
