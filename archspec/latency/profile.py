"""The profile file (JSON, schema ``archspec.latency-profile/1``): the fitted model plus
the setup it was measured on (device, the measuring libraries' versions, settings), the
environment it was fitted in (``fitted_with``: the fitting libraries' versions, Python,
CPU), the calibration's own noise and its link to the raw measurements
(``calibration.raw_sha256``, seeds, counts), the machine's **fingerprint** (a probe of a
few fixed kernels, the reference network's time and what shapes timings: CPU, SIMD
flags, cores, library versions, threads; :mod:`.probes`) and the calibration's own
held-out ``validation``.

Using a profile checks this machine against it first (:func:`machine_check`): the probe
is run again here (cached per process and for ``PROBE_TTL_S`` seconds on disk, keyed by
this machine's timing environment) and compared; a machine beyond the probe's noise
(``PROBE_FASTER``, ``PROBE_SLOWER``, ``PROBE_SHAPE``) or a different setup gets one
warning naming the ratio, the differences and the command that makes a profile of this
machine. Where the probe and the setup agree, the reference network is timed (cached
alike) and compared with its time at calibration (``DRIFT_FASTER``, ``DRIFT_SLOWER``)
or, for a fingerprint that did not record it, with the profile's prediction of it
(``NETWORK_FASTER``, ``NETWORK_SLOWER``). ``ARCHSPEC_NO_PROBE=1`` (or ``latency
--no-probe``) skips the probe and the network, not the setup comparison.

Reading a profile imports neither numpy nor onnxruntime (``archspec cost --profile``).
"""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchspecError
from .model import LatencyModel

SCHEMA = "archspec.latency-profile/1"


@dataclass
class Profile:
    backend: str
    settings: dict              # threads, batch, nchwc_block, session options
    machine: dict               # archspec.bench.machine()
    versions: dict              # archspec.bench.versions()
    model: LatencyModel
    calibration: dict = field(default_factory=dict)
    created: str = ""
    fitted_with: dict = field(default_factory=dict)   # calibrate.fit_environment()
    fingerprint: dict = field(default_factory=dict)   # probes.fingerprint()
    validation: dict = field(default_factory=dict)    # calibrate.validation_figure()

    def __post_init__(self):
        self.model.batch = self.batch   # the model predicts the profile's batch

    @property
    def nchwc_block(self) -> int:
        return int(self.settings.get("nchwc_block", 0))

    @property
    def batch(self) -> int:
        """The images per run the profile was measured with, and predicts (profiles
        made before it was a setting: 1)."""
        return int(self.settings.get("batch", 1))

    def kernels(self, graph, partial_add: str = "masked") -> list:
        """The kernels this profile's backend runs for ``graph`` (what it predicts),
        fused as its model was fitted (``blocked_concat``: fit rules 7 on,
        ``blocked_replicate``: 8 on, ``blocked_bn_acts``: 9 on and measured so:
        :meth:`LatencyModel.fusion`);
        ``partial_add``: the lowering of a partial add (a calibration's held-out
        networks are fused as they were measured)."""
        from .kernels import backend_kernels

        return backend_kernels(graph, self.backend, self.nchwc_block, partial_add,
                               **self.model.fusion())

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "created": self.created, "backend": self.backend,
                "settings": self.settings, "machine": self.machine, "versions": self.versions,
                "fitted_with": self.fitted_with, "calibration": self.calibration,
                **{k: v for k, v in (("fingerprint", self.fingerprint),
                                     ("validation", self.validation)) if v},
                "model": self.model.to_dict()}

    def save(self, path) -> None:
        from ..fsutil import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")


# The profiles the project ships: profiles/ beside the package (a checkout or an
# editable install, as the README installs; a wheel has none). A bare name
# (``cpu-ort-1t-xeon``, with or without ``.json``) names one of them wherever --profile
# takes a file.
SHIPPED = Path(__file__).resolve().parents[2] / "profiles"


def shipped() -> list[Path]:
    """The shipped profile files, by name (their raw measurements left out)."""
    if not SHIPPED.is_dir():
        return []
    return sorted((p for p in SHIPPED.glob("*.json") if not p.name.endswith(".raw.json")),
                  key=lambda p: p.stem)


def locate(path) -> Path:
    """``path`` when it is a file or has a folder part (``./x`` included), else the
    shipped profile of that bare name (``cpu-ort-1t-xeon`` or ``cpu-ort-1t-xeon.json``),
    else ``path`` as given (for :func:`load` to report)."""
    text = str(path)
    path = Path(path)
    if path.is_file() or "/" in text or os.sep in text or not text.strip():
        return path
    by_name = {p.stem: p for p in shipped()}
    return by_name.get(path.name.removesuffix(".json"), path)


def load(path) -> Profile:
    """The profile at ``path`` or of that shipped name (:func:`locate`)."""
    path = locate(path)
    if not path.is_file():
        names = ", ".join(p.stem for p in shipped())
        raise ArchspecError(f"{path}: profile not found (make one with `archspec calibrate`"
                            + (f"; shipped, by name: {names}" if names else "") + ")")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArchspecError(f"{path}: not a readable profile ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ArchspecError(f"{path}: not a latency profile (schema {SCHEMA} expected)")
    rules = _fit_rules(path, d.get("fitted_with"))   # before the model: a newer one may
    try:                                               # read features this one lacks
        model = LatencyModel.from_dict(d["model"])
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ArchspecError(f"{path}: broken profile model ({e})") from None
    _check_flags(path, rules, model)
    batch = d["settings"].get("batch", 1) if isinstance(d.get("settings"), dict) else 1
    if type(batch) is not int or batch < 1:
        raise ArchspecError(f"{path}: broken profile settings (batch {batch!r}; a positive "
                            "integer expected)")
    fingerprint = d.get("fingerprint") or {}
    if fingerprint and not fingerprint_well_formed(fingerprint):
        raise ArchspecError(f"{path}: broken machine fingerprint (kernels: name -> us, env "
                            "and, if present, network.ms > 0 expected); recalibrate")
    from .kernels import BACKENDS

    if d.get("backend") not in BACKENDS:
        raise ArchspecError(f"{path}: broken profile (backend {d.get('backend')!r}; one "
                            f"of {', '.join(BACKENDS)} expected)")
    return Profile(d["backend"], d["settings"], d["machine"], d["versions"], model,
                   d.get("calibration", {}), d.get("created", ""), d.get("fitted_with", {}),
                   fingerprint, d.get("validation") or {})


def _fit_rules(path, fitted_with) -> int:
    """A profile's fitting rules (``fitted_with.fit_rules``; 1 where not recorded: fit
    rules 1 did not record them), which must be this archspec's or older."""
    from .model import FIT_RULES

    rules = fitted_with.get("fit_rules", 1) if isinstance(fitted_with, dict) else 1
    if type(rules) is not int or rules < 1:
        raise ArchspecError(f"{path}: broken profile (fit_rules {rules!r}; a positive "
                            "integer expected)")
    if rules > FIT_RULES:
        raise ArchspecError(f"{path}: fitted by fitting rules {rules}, newer than this "
                            f"archspec's ({FIT_RULES}): upgrade archspec, or recalibrate "
                            "(`archspec calibrate`)")
    return rules


def _check_flags(path, rules: int, model: LatencyModel) -> None:
    """The model's flags must be those its fitting rules set (``blocked_bn_acts`` may be
    false: measurements older than the rule keep their fusion, latency.raw.raw_fusion)."""
    from .model import rule_flags

    want = rule_flags(rules)
    wrong = [f for f, v in model.flags().items()
             if v != want[f] and not (f == "blocked_bn_acts" and not v)]
    if wrong:
        said = f"fit rules {rules}" if rules > 1 else \
            "fit rules 1 (fitted_with.fit_rules is not recorded)"
        raise ArchspecError(f"{path}: broken profile model (flags {', '.join(wrong)} do not "
                            f"match {said}); recalibrate or refit it "
                            "(`archspec calibrate --from-raw`)")


def fingerprint_well_formed(fp) -> bool:
    """Whether a fingerprint can be read: probe kernels as positive times, an ``env``
    whose threads (if any) are a positive integer, a ``network`` (if any) with a
    positive ``ms``."""
    if not isinstance(fp, dict):
        return False
    kernels, env, net = fp.get("kernels"), fp.get("env"), fp.get("network") or {"ms": 1.0}
    threads = env.get("threads", 1) if isinstance(env, dict) else None
    return (isinstance(kernels, dict) and bool(kernels) and isinstance(env, dict)
            and all(map(positive_time, kernels.values()))
            and type(threads) is int and threads >= 1
            and isinstance(net, dict) and positive_time(net.get("ms")))


def setup_warnings(profile: Profile, machine: dict, versions: dict,
                   threads: int | None = None) -> list[str]:
    """Why this profile may not fit this setup (empty when it does)."""
    out = []
    for key in ("cpu", "logical_cores", "hostname_hash"):
        if profile.machine.get(key) != machine.get(key):
            out.append(f"profile measured on {key}={profile.machine.get(key)!r}, this "
                       f"machine has {machine.get(key)!r}")
    for package in (profile.backend, "numpy"):
        if profile.versions.get(package) != versions.get(package):
            out.append(f"profile measured with {package} {profile.versions.get(package)}, "
                       f"this setup has {versions.get(package)}")
    if threads is not None and threads != profile.settings.get("threads"):
        out.append(f"profile measured with {profile.settings.get('threads')} thread(s), "
                   f"asked for {threads}")
    return out


def warn(profile: Profile, name: str, **how) -> MachineCheck:
    """:func:`machine_check`, its warning (if any) printed on stderr before predicting."""
    import sys

    check = machine_check(profile, name, **how)
    message = check.message()
    if message:
        print(f"archspec: warning: {message}", file=sys.stderr)
    return check


def current_warnings(profile: Profile, threads: int | None = None) -> list[str]:
    """:func:`setup_warnings` against this machine (reads versions from metadata only)."""
    from ..bench import machine, versions

    return setup_warnings(profile, machine(), versions(), threads)


# ---- is this the machine the profile was made on? ------------------------------------------
# Derived from repeated probes on the calibrating machine (docs/latency.md, "Machine
# fingerprint"): quiet probes agree within ~3% (geometric mean over the kernels), while a
# slow spell of a shared host made the same machine look up to ~1.4x slower, and a
# fingerprint taken in such a spell made a later quiet probe look 1.16x faster.
PROBE_FASTER = 1.25     # this machine faster by more than this: another machine
PROBE_SLOWER = 1.5      # slower by more than this: another machine (or a very busy one)
# Kernels apart by more than this (slowest kernel ratio over fastest): another machine,
# whatever the mean says. A slow spell slows the memory-bound kernels (up to 1.7x seen)
# and leaves the compute-bound 1x1 conv alone, and a fingerprint taken in a spell can
# make a quiet probe's conv look ~1.16x faster: together ~2x on one machine. A
# Sapphire-Rapids-class Xeon against the Zen 3 host ran the 1x1 conv 1.9x faster and the
# copy 2.3x slower: 4.3x apart, though their mean (1.41x) was in bounds.
PROBE_SHAPE = 2.5
# The reference network (probes.REFERENCE_NETWORK) measured against the profile's own
# prediction of it: faster than predicted by more than NETWORK_FASTER, or slower by more
# than NETWORK_SLOWER (a busy spell slows a run; re-measured before it counts), the
# profile does not fit this machine now. The bounds hold the model's own error on that
# network where it was calibrated: the Xeon onnxruntime profiles read 0.97-0.99x, but a
# torch profile measured minutes before read 0.86-0.89x (torch eager's prediction of a
# small-resolution MobileNetV2 runs ~12% slow: docs/latency.md, "The reference network"),
# so 1.15x would warn right after a torch calibration.
NETWORK_FASTER = 1.25
NETWORK_SLOWER = 1.5
# The reference network against its own time at calibration (fingerprints that recorded
# it, from 2026-12-04): drift alone, so the bounds are tighter. In a quiet spell on the
# Xeon host 15 timings back to back spread 2.3% (onnxruntime, 1.69-1.73 ms) and 4.4%
# (torch, 5.50-5.74 ms), and the calibration keeps the fastest of its three, so a
# reading here tilts ~1-2% slow against it. A machine 8% faster than at calibration
# makes every prediction ~8% slow: most of the +-10% budget, with the model's own error
# (median |error| 2-4%) on top. Slower than DRIFT_SLOWER is timed again first (a busy
# spell only ever slows a run); slower twice, the machine is slower now, for as long as
# the cached reading lives (PROBE_TTL_S) at least.
DRIFT_FASTER = 1.08
DRIFT_SLOWER = 1.15
PROBE_TTL_S = 600       # a probe result is reused for 10 minutes
CALIBRATE_HINT = ("for a profile of this machine run `archspec calibrate --quick -o "
                  "my-profile.json` (about 90 s) or `archspec calibrate -o my-profile.json` "
                  "(about 10 min)")


def calibrate_hint(backend: str = "onnxruntime", slower: float | None = None) -> str:
    """What to run for a profile of this machine on ``backend`` (the times as measured
    on the project's 2-core hosts: docs/latency.md). ``slower``: how much slower this
    machine ran the probe kernels than the profile's; from 1.5x on the hint says the
    calibration takes about that many times as long (rounded up) (a calibration times a fixed set of
    networks: 2026-12-04, a Zen 1 EPYC that ran the probe 3.3x slower than the Xeon host
    took 2104 s where the Xeon took 531 s)."""
    hint = CALIBRATE_HINT
    if backend != "onnxruntime":
        hint = (hint.replace("calibrate ", f"calibrate --backend {backend} ")
                .replace("about 90 s", "about 2 min").replace("about 10 min", "about 13 min"))
    if slower is not None and slower >= 1.5:
        # rounded up: the probe's ratio undershot the Zen 1 case (3.3x, took 4.0x)
        hint += (f", times on the project's hosts; on this machine allow about "
                 f"{math.ceil(slower)}x as long")
    return hint


@dataclass
class MachineCheck:
    """This machine against a profile's fingerprint: the probe ratio (this machine's
    probe time over the profile's, geometric mean over the kernels) and the setup
    differences; :meth:`message` is the one warning, or None."""

    profile: str
    fingerprinted: bool
    differences: list = field(default_factory=list)
    ratio: float | None = None
    kernels: dict = field(default_factory=dict)
    probe: str = "not run"          # measured | cached (age N s) | skipped (why) | not run
    backend: str = "onnxruntime"
    # the reference network: name, against (calibration | prediction), calibrated_ms or
    # predicted_ms, measured_ms, ratio (measured / either), how it was measured; empty
    # when not run
    network: dict = field(default_factory=dict)
    # the differences that are timing-environment keys (env_differences), for verdict
    _setup: tuple = field(default=(), repr=False, compare=False)

    @property
    def speed_differs(self) -> bool:
        return self.ratio is not None and not 1 / PROBE_FASTER <= self.ratio <= PROBE_SLOWER

    @property
    def shape(self) -> float | None:
        """The slowest probe kernel's ratio over the fastest's (1: all alike)."""
        ratios = [k["ratio"] for k in self.kernels.values() if (k.get("ratio") or 0) > 0]
        return max(ratios) / min(ratios) if ratios else None

    @property
    def shape_differs(self) -> bool:
        return self.ratio is not None and (self.shape or 1.0) > PROBE_SHAPE

    @property
    def network_differs(self) -> bool:
        r = self.network.get("ratio")
        if r is None:
            return False
        faster, slower = network_bounds(self.network.get("against", "prediction"))
        return not 1 / faster <= r <= slower

    @property
    def matches(self) -> bool:
        return (self.fingerprinted and not self.differences and not self.speed_differs
                and not self.shape_differs and not self.network_differs)

    def _network(self) -> str:
        n = self.network
        r = n["ratio"]
        how = _times(r, network_bounds(n.get("against", "prediction")), 2)
        busy = ("; a busy machine also runs slower" + (
            ", and it was timed twice" if n["measured"].endswith("measured again") else "")
            if r > 1 else "")
        if n.get("against") == "calibration":
            # a drift of the whole machine moves most networks less than or as much as
            # this one (2026-12-04 15:04 UTC: 1.26x here, 224-px networks ~1.1x)
            return (f"this machine runs {n['name']} in {n['measured_ms']:.2f} ms now, "
                    f"{how} than when the profile was calibrated ({n['calibrated_ms']:.2f} "
                    f"ms){busy}; its predictions may be off by up to as much")
        # against a prediction the ratio holds the model's own error on this network too
        return (f"it predicts {n['predicted_ms']:.2f} ms for {n['name']}; this machine "
                f"runs it in {n['measured_ms']:.2f} ms ({how}){busy}; its predictions may "
                f"be off by roughly as much")

    def _speed(self) -> str:
        if self.ratio < 1:
            return (f"this machine runs the probe kernels {1 / self.ratio:.1f}x faster than "
                    f"the one that calibrated it")
        return (f"this machine runs the probe kernels {self.ratio:.1f}x slower than the one "
                f"that calibrated it (a busy machine also looks slower)")

    def _kernels(self) -> str:
        """The probe kernel by kernel, slowest ratio first."""
        def one(name, r):
            return f"{name} {1 / r:.1f}x faster" if r < 1 else f"{name} {r:.1f}x slower"
        ks = sorted(((n, k) for n, k in self.kernels.items() if (k.get("ratio") or 0) > 0),
                    key=lambda kv: -kv[1]["ratio"])
        return (f"the probe kernels run {self.shape:.1f}x apart against the profile's "
                f"({', '.join(one(n, k['ratio']) for n, k in ks)}), a machine of another "
                f"kind")

    def message(self) -> str | None:
        if not self.fingerprinted:
            also = f" (also: {'; '.join(self.differences)})" if self.differences else ""
            return (f"profile {self.profile} has no machine fingerprint (made before "
                    f"archspec recorded one), so whether it fits this machine cannot be "
                    f"checked{also}; {calibrate_hint(self.backend)}, and it will be")
        if self.matches:
            return None
        items = (([self._speed()] if self.speed_differs else [])
                 + ([self._kernels()] if self.shape_differs else []) + self.differences)
        much = " by as much" if self.speed_differs or self.shape_differs else ""
        if not items:   # the probe kernels and the setup agree, the network does not
            return (f"profile {self.profile} does not fit this machine now (another "
                    f"machine of the same kind, or the same one in another state): "
                    f"{self._network()}: {calibrate_hint(self.backend)}")
        return (f"profile {self.profile} was made on another machine or setup: "
                f"{'; '.join(items)}; its predictions may be off{much}: "
                f"{calibrate_hint(self.backend, self.ratio if self.speed_differs else None)}")

    def verdict(self) -> str:
        """The check in a few words, for a list of profiles (``archspec profiles``):
        ``yes``, or ``no: `` and what differs, or why it cannot be told."""
        if not self.fingerprinted:
            n = len(self.differences)
            return "unknown: no fingerprint" + (
                f" ({n} setup difference{'s' if n > 1 else ''})" if n else "")
        keys = [d.split(" ", 1)[0] for d in self.differences if d in self._setup]
        why = ([f"{', '.join(keys)} differ{'s' if len(keys) == 1 else ''}"] if keys else [])
        if self.probe.startswith("not run (the probe failed"):
            failed = self.probe.removeprefix("not run (the probe failed: ").split(":")[0]
            return f"unknown: the probe failed ({failed})" + (f"; {why[0]}" if why else "")
        why += [d for d in self.differences if d not in self._setup]
        if self.speed_differs:
            why.append(f"probe {_times(self.ratio, (PROBE_FASTER, PROBE_SLOWER), 1)}")
        if self.shape_differs:
            why.append(f"probe kernels {_past(self.shape, PROBE_SHAPE, 1)}x apart")
        if self.network_differs:
            bounds = network_bounds(self.network.get("against", "prediction"))
            why.append(f"reference network {_times(self.network['ratio'], bounds, 2)}")
        if why:
            return "no: " + "; ".join(why)
        if self.ratio is None:
            return f"setup matches; probe {self.probe.split(' (')[0]}"
        if str(self.network.get("measured", "")).startswith("not run"):
            return "yes (probe; the reference network could not be timed)"
        return "yes"

    def to_dict(self) -> dict:
        return {"profile": self.profile, "fingerprinted": self.fingerprinted,
                "matches": self.matches, "probe": self.probe,
                "ratio": None if self.ratio is None else round(self.ratio, 4),
                "shape": None if self.shape is None else round(self.shape, 4),
                "thresholds": {"faster": PROBE_FASTER, "slower": PROBE_SLOWER,
                               "shape": PROBE_SHAPE, "network_faster": NETWORK_FASTER,
                               "network_slower": NETWORK_SLOWER,
                               "network_drift_faster": DRIFT_FASTER,
                               "network_drift_slower": DRIFT_SLOWER},
                "kernels": self.kernels, "network": self.network,
                "differences": self.differences,
                "warning": self.message()}


def _past(x: float, bound: float, digits: int) -> str:
    """``x`` with ``digits`` decimals, or more where fewer would print ``bound``, the
    bound it crossed."""
    digits = next((d for d in range(digits, 6) if round(x, d) != bound), 6)
    return f"{x:.{digits}f}"


def _times(ratio: float, bounds: tuple, digits: int) -> str:
    """``ratio`` (this machine over the profile's) as "N.NNx faster" or "... slower"
    (:func:`_past` of the bound it crossed; ``bounds``: faster, slower)."""
    x = 1 / ratio if ratio < 1 else ratio
    return f"{_past(x, bounds[0 if ratio < 1 else 1], digits)}x " + (
        "faster" if ratio < 1 else "slower")


def env_differences(there: dict, here: dict) -> list[str]:
    """What differs between two :func:`~archspec.latency.probes.timing_env` records; a key
    the profile's record does not have (an archspec that recorded less) is not compared."""
    return [f"{k} {there.get(k)!r} there, {here.get(k)!r} here"
            for k in sorted(there) if _same(k, there.get(k)) != _same(k, here.get(k))]


def _same(key: str, value):
    """What a timing-env entry means for the comparison: for the denormal note, whether
    timings were flushed, not how the note words the mechanism (which may change)."""
    if key == "denormals" and isinstance(value, str):
        return value.startswith("flushed")
    return value


def probe_ratio(profile_us: dict, this_us: dict) -> tuple[float, dict]:
    """The geometric mean of this machine's probe times over the profile's, and per
    kernel the pair and its ratio."""
    import math

    names = [k for k in profile_us if profile_us[k] > 0 and this_us.get(k, 0) > 0]
    if not names:
        raise ValueError("no probe kernel in common")
    kernels = {k: {"profile_us": profile_us[k], "this_us": this_us[k],
                   "ratio": round(this_us[k] / profile_us[k], 4)} for k in names}
    ratio = math.exp(sum(math.log(this_us[k] / profile_us[k]) for k in names) / len(names))
    return ratio, kernels


def _no_probe() -> str | None:
    import os

    value = os.environ.get("ARCHSPEC_NO_PROBE", "")
    return "skipped (ARCHSPEC_NO_PROBE)" if value not in ("", "0") else None


def machine_check(profile: Profile, name: str, *, threads: int | None = None,
                  skip: str | None = None, env: dict | None = None,
                  run_probe=None, run_network=None) -> MachineCheck:
    """Check this machine against ``profile`` (see :class:`MachineCheck`). ``skip``
    (a reason) or ``ARCHSPEC_NO_PROBE`` keeps the probe from running; ``env``,
    ``run_probe`` (threads -> kernel us, and how it was obtained) and ``run_network``
    (threads, batch -> the reference network's ms, and how) stand in for this machine
    (tests)."""
    from ..bench import machine, versions

    fp = profile.fingerprint
    if not fp:
        return MachineCheck(name, False, setup_warnings(profile, machine(), versions(),
                                                        threads), backend=profile.backend)
    want = int(fp["env"].get("threads", profile.settings.get("threads", 1)))
    if env is None:
        from .probes import timing_env

        env = timing_env(profile.backend, threads or want)
    setup = env_differences(fp["env"], env)
    check = MachineCheck(name, True, list(setup), backend=profile.backend, _setup=tuple(setup))
    skip = skip or _no_probe()
    if skip:
        check.probe = skip
        return check
    from .probes import PROBE_VERSION

    if fp.get("version") != PROBE_VERSION:
        check.probe = f"not run (profile probe version {fp.get('version')})"
        return check
    try:
        _compare(check, fp["kernels"], want,
                 run_probe or functools.partial(cached_probe, backend=profile.backend))
    except Exception as e:   # noqa: BLE001 -- advisory: a failed probe must not stop a prediction
        check.ratio, check.kernels = None, {}
        check.probe = f"not run (the probe failed: {type(e).__name__}: {e})"
        check.differences.append(f"this machine's speed could not be probed ({check.probe})")
        return check
    if check.speed_differs or check.shape_differs or check.differences:
        return check    # another machine or setup already: no need to time a network
    try:
        _compare_network(check, profile, want, run_network or functools.partial(
            cached_network, backend=profile.backend))
    except Exception as e:   # noqa: BLE001 -- advisory, as the probe
        check.network = {"measured": f"not run (it failed: {type(e).__name__}: {e})"}
    return check


def _compare_network(check: MachineCheck, profile: Profile, threads: int, run) -> None:
    """Time the reference network and compare it with its time at calibration (a
    fingerprint that recorded one, :func:`calibrated_network`), else with the profile's
    prediction of it. A slow reading is measured again (uncached) and the faster kept
    before it counts (a busy spell only ever slows a run); a fast one stands."""
    from .probes import REFERENCE_NETWORK, reference_graph

    spec, resolution = REFERENCE_NETWORK
    then = calibrated_network(profile)
    if then is None:
        graph = reference_graph()
        base = profile.model.predict(profile.kernels(graph), graph).total_ms
        if not positive_time(base):
            raise ValueError(f"the profile predicts {base} ms for {spec} at {resolution} px")
    else:
        base = then
    ms, how = _timed(run(threads, profile.batch))
    check.network = {"name": f"{spec} at {resolution} px" + (
        f", batch {profile.batch}" if profile.batch > 1 else ""),
        "against": "prediction" if then is None else "calibration",
        **({"predicted_ms": round(base, 4)} if then is None else {"calibrated_ms": base}),
        "measured_ms": ms, "ratio": _ratio(ms, base), "measured": how}
    if check.network_differs and ms > base:
        try:
            again, again_how = _timed(run(threads, profile.batch, fresh=True))
        except Exception as e:   # noqa: BLE001 -- the first reading stands
            check.network["measured"] = (f"{how}; measuring again failed "
                                         f"({type(e).__name__}: {e})")
            return
        ms = min(ms, again)
        check.network.update(measured_ms=ms, ratio=_ratio(ms, base),
                             measured=how + _again(again_how))


def _again(how: str) -> str:
    """What a reading asked to be measured again adds to how the first was obtained:
    measured now, or already measured again earlier in this process (:func:`_cached`)."""
    return ", measured again" if how == "measured" else f", {how}"


def _ratio(ms: float, base: float) -> float:
    """ms / base to 6 significant digits (never rounded to 0: a hostile calibration time
    of hours against a measured millisecond still compares)."""
    return float(f"{ms / base:.6g}")


def _timed(result: tuple) -> tuple:
    """A (ms, how) timing that can be compared, else ValueError."""
    ms, how = result
    if not positive_time(ms):
        raise ValueError(f"the reference network timed {ms!r} ms")
    return ms, how


def calibrated_network(profile: Profile) -> float | None:
    """The reference network's time (ms) when ``profile`` was calibrated, if its
    fingerprint recorded it for today's reference network and the profile's batch."""
    from .probes import REFERENCE_NETWORK, REFERENCE_VERSION

    net = profile.fingerprint.get("network")
    if not isinstance(net, dict):
        return None
    spec, resolution = REFERENCE_NETWORK
    same = (net.get("name"), net.get("resolution"), net.get("batch"),
            net.get("version")) == (spec, resolution, profile.batch, REFERENCE_VERSION)
    return float(net["ms"]) if same and positive_time(net.get("ms")) else None


def network_bounds(against: str) -> tuple[float, float]:
    """(faster, slower) bounds of the reference network's ratio: against its time at
    calibration (drift alone) or against the profile's prediction (drift and the
    model's own error on it)."""
    if against == "calibration":
        return DRIFT_FASTER, DRIFT_SLOWER
    return NETWORK_FASTER, NETWORK_SLOWER


def positive_time(x) -> bool:
    """A time that can be compared: a finite number above 0 (not a bool)."""
    import math

    return (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            and x > 0)


def _compare(check: MachineCheck, profile_us: dict, threads: int, run) -> None:
    """Probe this machine and compare; a probe out of bounds is measured again
    (uncached) and the faster kept per kernel before it counts (a slow spell of a
    shared host is not another machine)."""
    this_us, check.probe = run(threads)
    check.ratio, check.kernels = probe_ratio(profile_us, this_us)
    if check.speed_differs or check.shape_differs:
        again, how = run(threads, fresh=True)
        this_us = {k: min(us, again.get(k, us)) for k, us in this_us.items()}
        check.ratio, check.kernels = probe_ratio(profile_us, this_us)
        check.probe += _again(how)


_PROBED: dict = {}


def _cache_file(key: str):
    from ..spec.validcache import folder

    base = folder()
    return None if base is None else base.parent / "probe" / f"{key}.json"


def probe_key(threads: int, backend: str = "onnxruntime") -> str:
    """The cache key of this machine's probe: the probe's version, this machine's
    timing environment on ``backend`` and host (a profile's own identity does not enter:
    every profile of the same backend and threads compares with the same probe)."""
    import hashlib

    from ..bench import machine
    from .probes import PROBE_VERSION, timing_env

    ident = {"v": PROBE_VERSION, "env": timing_env(backend, threads),
             "host": machine()["hostname_hash"]}
    if backend != "onnxruntime":   # an onnxruntime key has no backend entry
        ident["backend"] = backend
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def cached_probe(threads: int, *, now: float | None = None, run=None,
                 fresh: bool = False, backend: str = "onnxruntime") -> tuple[dict, str]:
    """This machine's probe (kernel -> us) and where it came from: this process's,
    the cache folder's (``$ARCHSPEC_CACHE_DIR/probe``, else ``~/.cache/archspec/probe``;
    reused for ``PROBE_TTL_S``), or measured now by ``run`` (default
    :func:`~archspec.latency.probes.probe`). ``fresh``: measure now, and keep the
    faster of this and a cached result per kernel. ``backend``: the runtime the probe
    kernels run on."""
    if run is None:
        from .probes import probe

        def run(threads):
            return probe(threads, backend=backend)
    return _cached(probe_key(threads, backend), lambda: run(threads), now, fresh)


def network_key(threads: int, batch: int = 1, backend: str = "onnxruntime") -> str:
    """The cache key of this machine's reference-network time: the probe's key, the
    reference network, how it is timed and the batch."""
    from .probes import REFERENCE_NETWORK, REFERENCE_VERSION

    spec, resolution = REFERENCE_NETWORK
    return (f"{probe_key(threads, backend)}-{spec}-{resolution}px-b{batch}"
            f"-v{REFERENCE_VERSION}")


def cached_network(threads: int, batch: int = 1, *, now: float | None = None, run=None,
                   fresh: bool = False, backend: str = "onnxruntime") -> tuple[float, str]:
    """The reference network's time on this machine (ms) and where it came from, cached
    as :func:`cached_probe` caches the probe kernels (per threads, batch and backend);
    ``fresh``: measure now and keep the faster of this and a cached time."""
    if run is None:
        from .probes import reference_ms

        def run(threads, batch):
            return reference_ms(threads, batch, backend)
    times, how = _cached(network_key(threads, batch, backend),
                         lambda: {"network": run(threads, batch)}, now, fresh, ("network",))
    return times["network"], how


def _cached(key: str, measure, now: float | None, fresh: bool,
            needs: tuple = ()) -> tuple[dict, str]:
    """Times (name -> time) kept per process and on disk for ``PROBE_TTL_S`` under
    ``key`` (a cached entry lacking one of ``needs`` is none), else ``measure()``d now;
    ``fresh``: measured now, the faster of this and a live cached time kept per name,
    under the cached entry's time (so a fast reading expires as it would have: it is
    not renewed by being measured again); at most once per process while the cached
    reading lives (``archspec profiles`` checks many profiles against one probe): then
    the cached times, "measured again earlier in this process". Advisory: processes that
    measure at once each write the file whole, and the last one's entry stands."""
    import time

    now = time.time() if now is None else now
    hit = _PROBED.get(key) or _read_cached(_cache_file(key))
    live = hit if hit and 0 <= now - hit["time"] <= PROBE_TTL_S and all(
        k in hit["kernels"] for k in needs) else None
    if fresh and live and (_PROBED.get(key) or {}).get("again"):
        return live["kernels"], "measured again earlier in this process"
    if live and not fresh:
        return live["kernels"], f"cached (age {now - live['time']:.0f} s)"
    times = measure()
    if live:
        times = {k: min(t, live["kernels"].get(k, t)) for k, t in times.items()}
    entry = {"time": live["time"] if live else now, "kernels": times}
    _PROBED[key] = {**entry, "again": fresh}
    _write_cached(_cache_file(key), entry)
    return times, "measured"


def _read_cached(path) -> dict | None:
    try:
        d = json.loads(path.read_text())
        ok = (isinstance(d["kernels"], dict) and all(map(positive_time, d["kernels"].values()))
              and (d["time"] == 0 or positive_time(d["time"])) and type(d["time"]) is not bool)
        return d if ok else None
    except (AttributeError, OSError, ValueError, TypeError, KeyError):
        return None


def _write_cached(path, doc: dict) -> None:
    if path is None:
        return
    try:
        from ..fsutil import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc))
    except OSError:
        pass   # the cache only saves time
