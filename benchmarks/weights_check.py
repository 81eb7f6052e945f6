"""Load torchvision's and timm's state dicts through `archspec build --weights-from` and
compare the logits with the reference models' (a check run by hand, not a test).

Two phases, each in its own venv (the reference venv has torch, timm and torchvision;
archspec's venv has no timm):

    /work/refvenv/bin/python benchmarks/weights_check.py save /tmp/weights_check
    .venv/bin/python benchmarks/weights_check.py compare /tmp/weights_check

``save`` builds every reference model of PAIRS (random init, nothing downloaded), gives its
batch norms random statistics and affine parameters (so that a BN eps or a batch-norm
tensor loaded into the wrong place shows in the logits), and writes ``<name>.pth`` (the
plain state dict, as the libraries publish their weights) and ``<name>.io.pt`` (two random
224x224 images and the reference's eval-mode logits on them).
``compare`` runs ``archspec build SPEC --weights-from <name>.pth -f json -o <name>.ours.pt``
(the command line, as a user would), loads the file it wrote, runs the same images and
prints one markdown row per pair: tensors loaded (reshaped), max |ours - reference|,
max |reference| and their ratio. It exits 1 when any pair fails to load or differs by more
than TOL (relative), except the pairs in EXPECTED.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# (library, reference model, archspec spec: a shipped name, or timm_bn:BASE for BASE with
# timm's batch norm, written beside the files)
TIMM_BN = "extends: {base}\nname: {name}\nbn: {{eps: 1.0e-5, momentum: 0.1}}\n"
PAIRS = [
    ("torchvision", "mobilenet_v2", "mobilenetv2"),
    ("torchvision", "mobilenet_v3_large", "mobilenetv3_large"),
    ("torchvision", "mobilenet_v3_small", "mobilenetv3_small"),
    ("timm", "mobilenetv2_100", "mobilenetv2"),
    ("timm", "mobilenetv3_large_100", "mobilenetv3_large"),  # BN eps 1e-5 vs the spec's 1e-3
    ("timm", "mobilenetv3_large_100", "timm_bn:mobilenetv3_large"),
    ("timm", "mobilenetv3_small_100", "timm_bn:mobilenetv3_small"),
    ("timm", "tf_mobilenetv3_large_100", "tf_mobilenetv3_large_100"),
    ("timm", "tf_mobilenetv3_small_100", "tf_mobilenetv3_small_100"),
    ("timm", "efficientnet_b0", "efficientnet_b0"),
    ("timm", "mnasnet_100", "mnasnet_100"),
    ("timm", "ghostnet_100", "ghostnet_100"),
]
TOL = 1e-4  # on max |ours - reference| / max |reference|
# pairs that are expected to differ, and why
EXPECTED = {("timm", "mobilenetv3_large_100", "mobilenetv3_large"):
            "expected: timm's BN eps 1e-5, the spec's the official 1e-3"}
ROOT = Path(__file__).resolve().parents[1]


# ---- save (reference venv) ----------------------------------------------------------------
def reference(library: str, name: str):
    if library == "timm":
        import timm

        return timm.create_model(name, pretrained=False)
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def randomise_bn(model, gen) -> None:
    """Batch-norm statistics and affine parameters away from their initial values."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def save(folder: Path) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for library, name, _ in dict.fromkeys((lib, n, "") for lib, n, _ in PAIRS):
        torch.manual_seed(0)
        model = reference(library, name)
        randomise_bn(model, torch.Generator().manual_seed(1))
        model.eval()
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            logits = model(x)
        torch.save(model.state_dict(), folder / f"{library}_{name}.pth")
        torch.save({"input": x, "logits": logits}, folder / f"{library}_{name}.io.pt")
        print(f"saved {library} {name}", file=sys.stderr)


# ---- compare (archspec venv) --------------------------------------------------------------
def spec_argument(spec: str, folder: Path) -> str:
    """A shipped name, or for ``timm_bn:BASE`` a spec file extending BASE with timm's BN
    (eps 1e-5, momentum 0.1) written into ``folder``."""
    if not spec.startswith("timm_bn:"):
        return spec
    base = spec.partition(":")[2]
    path = folder / f"{base}_timm_bn.yaml"
    path.write_text(TIMM_BN.format(base=ROOT / "archspec/specs" / f"{base}.yaml",
                                   name=f"{base}_timm_bn"))
    return str(path)


def compare_pair(library: str, name: str, spec: str, folder: Path) -> tuple[list, bool]:
    """The table cells of one pair and whether it passed."""
    import torch

    from archspec.backends import get_backend

    stem = folder / f"{library}_{name}"
    ours = folder / f"{library}_{name}.{spec.replace(':', '_')}.ours.pt"
    r = subprocess.run([sys.executable, "-m", "archspec", "build", spec_argument(spec, folder),
                        "--weights-from", f"{stem}.pth", "-f", "json", "-o", str(ours)],
                       capture_output=True, text=True)
    label = [f"{library} `{name}`", f"`{spec}`"]
    if r.returncode != 0:
        return label + [f"**not loaded**: {r.stderr.strip()}", "-", "-", "-"], False
    report = json.loads(r.stdout)
    reshaped = sum(t["status"] == "reshaped" for t in report["tensors"])
    io = torch.load(f"{stem}.io.pt", weights_only=True)
    model = get_backend("torch").load(ours).eval()
    with torch.no_grad():
        logits = model(io["input"]).reshape(io["logits"].shape)
    diff = (logits - io["logits"]).abs().max().item()
    scale = io["logits"].abs().max().item()
    loaded = f"{report['counts']['loaded']}/{report['counts']['model']} ({reshaped} reshaped)"
    rel = diff / scale
    note = EXPECTED.get((library, name, spec))
    shown = f"{rel:.1e}" if rel <= TOL else f"**{rel:.1e}**" + (f" ({note})" if note else "")
    return label + [loaded, f"{diff:.1e}", f"{scale:.2f}", shown], rel <= TOL or bool(note)


def compare(folder: Path) -> int:
    rows, ok = [], True
    for library, name, spec in PAIRS:
        cells, passed = compare_pair(library, name, spec, folder)
        rows.append("| " + " | ".join(cells) + " |")
        ok &= passed
    print("| reference | archspec spec | tensors loaded | max abs diff | max abs logit | "
          "relative |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0 if ok else 1


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("save", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(args[1])
    if args[0] == "save":
        save(folder)
        return 0
    return compare(folder)


if __name__ == "__main__":
    sys.exit(main())
