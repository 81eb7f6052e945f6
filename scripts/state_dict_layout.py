"""Write the key and shape layout of torchvision's and timm's state dicts as JSON.

Run in a venv with torch, torchvision and timm (not archspec's: the test suite must not
need them), from the project root:

    /work/refvenv/bin/python scripts/state_dict_layout.py [--out tests/data]

Each reference model of LAYOUTS is built with random weights (``weights=None`` /
``pretrained=False``: nothing is downloaded) and its ``state_dict()`` is recorded in order,
one ``[key, shape, dtype]`` per tensor (buffers and ``num_batches_tracked`` included), in
``<library>_<model>_layout.json``. tests/test_weights.py fills these layouts with random
values and loads them into the archspec spec named beside them (``--weights-from``).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

# (library, reference model, the shipped archspec spec its tensors load into)
LAYOUTS = [
    ("torchvision", "mobilenet_v2", "mobilenetv2"),
    ("torchvision", "mobilenet_v3_large", "mobilenetv3_large"),
    ("torchvision", "mobilenet_v3_small", "mobilenetv3_small"),
    ("timm", "mobilenetv3_large_100", "mobilenetv3_large"),
    ("timm", "efficientnet_b0", "efficientnet_b0"),
]


def reference_model(library: str, name: str):
    """The reference model with random weights (nothing downloaded)."""
    if library == "timm":
        import timm

        return timm.create_model(name, pretrained=False)
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def layout(model) -> list:
    """``[key, shape, dtype]`` for every entry of the model's state dict, in order."""
    return [[key, list(t.shape), str(t.dtype).removeprefix("torch.")]
            for key, t in model.state_dict().items()]


def versions() -> dict:
    import timm
    import torch
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "python": platform.python_version()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests/data")
    args = parser.parse_args(argv)
    made_with = versions()
    for library, name, spec in LAYOUTS:
        doc = {"library": library, "model": name, "spec": spec, "versions": made_with,
               "tensors": layout(reference_model(library, name))}
        path = args.out / f"{library}_{name}_layout.json"
        lines = ",\n".join("  " + json.dumps(t) for t in doc.pop("tensors"))
        head = json.dumps(doc)[:-1]
        path.write_text(f'{head}, "tensors": [\n{lines}\n]}}\n')
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
