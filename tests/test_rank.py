"""ReXNet's rank measure: exact on matrices of known rank, per layer of a spec with random
weights, and the random-network study's trends (Figure 1): rank grows with the channel
ratio, a nonlinearity expands it beyond the linear layer's bound."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

torch = pytest.importorskip("torch")


def test_threshold_rank_of_a_known_rank_matrix():
    from archspec.search.rank import normalized_rank

    gen = torch.Generator().manual_seed(0)
    for n, c, k in ((200, 40, 7), (30, 64, 12), (1000, 16, 16)):
        x = torch.randn(n, k, generator=gen) @ torch.randn(k, c, generator=gen)
        assert normalized_rank(x, "threshold", 1e-6) * min(n, c) == pytest.approx(k)
        assert normalized_rank(x, "effective") * min(n, c) <= k + 1e-6


def test_layer_ranks_of_a_spec_match_numpy():
    import numpy as np

    import archspec
    from archspec.search.rank import feature_ranks

    spec = archspec.load("mobilenetv2_cifar", width=0.35, resolution=16)
    rows = feature_ranks(spec, batch=4, measure="threshold", tol=1e-3)
    assert {r["layer"] for r in rows} >= {"stages.0.block0", "stages.1.block0.dw"}
    model = archspec.build(spec, backend="torch", seed=0).eval()
    names = {n for n, _ in model.named_modules()}
    layers = ("stages.0.block0", "stages.2.block0.expand", "stages.2.block0.project")
    outs = {}
    for layer in layers:
        module = f"{layer}.act" if f"{layer}.act" in names else f"{layer}.bn"
        model.get_submodule(module).register_forward_hook(
            lambda m, i, o, layer=layer: outs.__setitem__(layer, o.detach().clone()))
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x)
    for layer in layers:
        m = outs[layer].permute(0, 2, 3, 1).reshape(-1, outs[layer].shape[1])
        s = np.linalg.svd(m.double().numpy(), compute_uv=False)
        row = next(r for r in rows if r["layer"] == layer)
        assert row["rank"] == int((s > 1e-3 * s[0]).sum())
        assert row["positions"] == m.shape[0] and row["channels"] == m.shape[1]


def test_study_reproduces_figure_1_trends():
    from archspec.search.rank import study

    r = study(6, acts=("linear", "relu", "swish"), ratios=[0.1, 0.5, 1.0],
              expansions=[1, 6])
    single = r["panels"]["single_layer"]
    assert single["linear"][0] == pytest.approx(0.1, abs=0.02)  # rank(WX) <= d_in
    assert single["linear"] == sorted(single["linear"])
    for act in ("relu", "swish"):
        assert single[act][0] > 2 * single["linear"][0]     # nonlinearity expands rank
        assert single[act][-1] > single[act][0]              # larger d_in / d_out, more rank
    assert r["panels"]["bottleneck"]["swish"][-1] > r["panels"]["bottleneck"]["swish"][0]


def test_rank_command(tmp_path):
    r = run_cli("rank", "mobilenetv2_cifar", "-w", "0.35", "-r", "16", "--batch", "2",
                "-f", "json", "--plot", tmp_path / "r.png")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "archspec.rank/1" and 0 < doc["mean_normalized"] <= 1
    assert (tmp_path / "r.png").stat().st_size > 0
    r = run_cli("rank")
    assert r.returncode == 2 and "--study" in r.stderr


def test_rank_refuses_a_model_file(tmp_path):
    from test_adapt import _onnx

    r = run_cli("rank", _onnx(tmp_path))
    assert r.returncode == 2 and "not a model file" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
