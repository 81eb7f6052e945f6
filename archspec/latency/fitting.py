"""Fitting: the latency model fitted to calibration measurements (:func:`build`), in a
recorded environment (:func:`fit_environment`: the libraries, BLAS kernels, Python and
CPU that decide a fit's bits) with the BLAS held to one thread."""
from __future__ import annotations

import datetime as _dt

from .check import TOLERANCE
from .kernels import backend_kernels
from .model import FIT_RULES, FUSION_FLAGS, rule_flags
from .probes import L2_DEFAULT
from .raw import digest, partial_add_lowering, raw_backend, raw_batch, raw_fusion

FIT_LIBRARIES = ("archspec", "scikit-learn", "numpy", "scipy")
# FIT_RULES: the version of archspec's fitting rules (latency.model, where its history is)


def _blas() -> list[str]:
    """The BLAS libraries loaded (numpy's, scipy's), with the kernel set each picked for
    this CPU: e.g. OpenBLAS's SkylakeX (AVX-512) and Haswell (AVX2) kernels round
    differently, and the trees then split differently."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["unknown (no threadpoolctl)"]
    return sorted({f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
                   for i in threadpool_info() if i.get("user_api") == "blas"})


def fit_environment(rules: int = FIT_RULES) -> dict:
    """What decides a fit's bits, besides the measurements: archspec's fitting rules
    (:data:`FIT_RULES`), the fitting libraries'
    versions (scikit-learn's trees; numpy's least squares; scipy under scikit-learn), the
    BLAS kernels they run (:func:`_blas`), the Python and the CPU. Equal environments
    refit a raw file to the same profile, bit for bit."""
    import platform

    import numpy  # noqa: F401  (loads its BLAS, so that _blas sees it)

    from ..bench import machine, versions

    return {**versions(FIT_LIBRARIES), **({"fit_rules": rules} if rules >= 2 else {}),
            "python": platform.python_version(), "cpu": machine()["cpu"], "blas": _blas()}


def _one_blas_thread():
    """BLAS limited to one thread while fitting (a thread count must not change bits)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def build(raw: dict, n_trees: int = 200, tree_seed: int = 0, tree_act: bool = False,
          rules: int = FIT_RULES):
    """The :class:`~archspec.latency.profile.Profile` fitted to
    :func:`~archspec.latency.calibrate.calibrate`'s samples (or
    :func:`~archspec.latency.raw.load_raw`'s). It records the setup the measurements
    were taken on (from the raw data; empty when an older file lacks it -- a refit
    elsewhere must not claim its own), the environment of the fit
    (:func:`fit_environment`) and its link to the measurements (seeds, counts,
    :func:`~archspec.latency.raw.digest`); ``tree_act``: the trees also read each
    kernel's activation class; ``rules``: the fitting rules' version (an older one
    refits a profile those rules fitted). The profile's batch is the measurements' (the samples'
    features are for it: :func:`~archspec.latency.raw.load_raw`)."""
    from .model import HINGES_L2, fit
    from .profile import Profile

    samples = raw["samples"] if rules >= FIT_RULES else _older_fusion(raw, rules)
    with _one_blas_thread():   # the BN fusion is the measurements' (raw_fusion)
        model = fit(samples, raw["overhead"], raw.get("walls"),
                    hinges=tuple(h * raw.get("l2_bytes", L2_DEFAULT) // 4 for h in HINGES_L2),
                    n_trees=n_trees, tree_seed=tree_seed, tree_act=tree_act, rules=rules,
                    fusion=raw_fusion(raw))
    backend = raw_backend(raw)
    settings = {"threads": raw["threads"], "batch": raw_batch(raw),
                "nchwc_block": raw["nchwc_block"],
                "l2_bytes": raw.get("l2_bytes", L2_DEFAULT),
                **({"graph_optimization": "all", "execution_mode": "sequential"}
                   if backend == "onnxruntime" else
                   {"mode": "eager", "grad": "inference_mode",
                    "allocator": raw.get("allocator")}),
                "inter_op_threads": 1, "dtype": "fp32",
                **({"denormals": raw["denormals"]} if raw.get("denormals") else {})}
    calib = {k: raw.get(k, 0) for k in ("networks", "variants", "repeats", "rounds", "warmup",
                                        "seed", "seconds", "round_spread_median",
                                        "round_spread_p90", "profiler_us_per_node",
                                        "min_round_ms", "measured")}
    calib["kernel_samples"] = len(raw["samples"])
    if raw.get("settle"):   # networks measured again until their fastest rounds agreed
        calib["settle"] = raw["settle"]
    # the random networks' sampling plan (latency.networks.SAMPLER): files before it
    # was recorded drew version 1
    calib["sampler"] = raw.get("sampler", 1)
    if backend == "onnxruntime":   # how profiled reorders were charged (raw files before
        calib["reorders"] = raw.get("reorders", "next kernel")   # it: the next kernel)
    calib["raw_sha256"] = digest(raw)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    profile = Profile(backend, settings, raw.get("machine") or {},
                      raw.get("versions") or {}, model, calib, created, fit_environment(rules),
                      raw.get("fingerprint") or {})
    profile.validation = validation(profile, raw.get("holdout"),
                                    partial_add=partial_add_lowering(raw))
    return profile


def _older_fusion(raw: dict, rules: int) -> list[dict]:
    """The samples with the features of the fusion of fit rules ``rules`` (before 7
    every concat reorders its blocked inputs, before 8 every replicate): what a profile
    fitted by older rules was fitted on. ``raw``'s own samples
    (:func:`~archspec.latency.raw.load_raw`'s, or a calibration's) carry this
    archspec's fusion. Rules before 9 cannot refit measurements attributed to the
    kernels of fit rules 9 (their BN kernels cover other nodes)."""
    from .raw import networks_from_record

    flags = rule_flags(rules)
    fusion = {f: flags[f] for f in FUSION_FLAGS}
    if raw_fusion(raw)["blocked_bn_acts"] and not fusion["blocked_bn_acts"]:
        raise ValueError(f"fit rules {rules} cannot refit these measurements: their "
                         "kernels were fused by fit rules 9 or later (a BN blocked by its "
                         "input's layout)")
    graphs = networks_from_record(raw["networks_ir"])
    backend, block, batch = raw_backend(raw), int(raw["nchwc_block"]), raw_batch(raw)
    lowering = partial_add_lowering(raw)
    features = [k.features(batch) for g in graphs
                for k in backend_kernels(g, backend, block, lowering, **fusion)]
    if len(features) != len(raw["samples"]):
        raise ValueError("the networks' kernels are not the samples'")
    return [{**s, "features": f} for s, f in zip(raw["samples"], features)]


def validation(profile, holdout: dict | None, tolerance: float = TOLERANCE,
               partial_add: str = "masked") -> dict:
    """The profile's own validation figure: its predictions of the calibration's
    held-out networks (never fitted) against their measured times -- each network's
    fastest round median, the estimator the profile was fitted to (the quiet-machine
    time); ``all_runs``: against the median of all runs, as ``latency --check`` and
    ``benchmarks/latency_check.py`` measure. Empty without held-out networks (a raw file
    from before they were measured). ``partial_add``: the lowering they were measured
    with."""
    if not holdout:
        return {}
    from .raw import networks_from_record

    graphs = networks_from_record(holdout["networks_ir"])
    # fused as they were measured (a raw file records its partial-add lowering), for
    # the profile's batch (the model's: Profile sets it)
    predicted = [profile.model.predict(profile.kernels(g, partial_add)).total_ms
                 for g in graphs]
    fastest = [min(r) for r in holdout["round_ms"]] if "round_ms" in holdout else None
    main = _errors(predicted, fastest or holdout["measured_ms"], tolerance)
    return {**main, "estimator": "fastest round median" if fastest else "median of all runs",
            "all_runs": _errors(predicted, holdout["measured_ms"], tolerance),
            "spread_median": _median(holdout["spread"]), "rounds": holdout["rounds"],
            "held_out": "random variants of the shipped specs, seeded apart from the "
                        "calibration's and benchmarks/latency_check.py's"}


def _median(xs: list) -> float:
    import statistics

    return round(statistics.median(xs), 4)


def _errors(predicted: list, measured: list, tolerance: float) -> dict:
    errors = [p / m - 1 for p, m in zip(predicted, measured)]
    within = sum(abs(e) <= tolerance for e in errors)
    return {"networks": len(errors), "within": within, "tolerance": tolerance,
            "share_within": round(within / len(errors), 4),
            "abs_error_median": _median([abs(e) for e in errors]),
            "abs_error_max": round(max(abs(e) for e in errors), 4),
            "signed_error_median": _median(errors)}
