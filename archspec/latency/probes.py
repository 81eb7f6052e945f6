"""Hardware probes: what the CPU the latency model runs on decides (onnxruntime's NCHWc
block size, the per-core L2 cache size)."""
from __future__ import annotations

L2_DEFAULT = 1024 * 1024


def nchwc_block() -> int:
    """onnxruntime's NCHWc block size on this CPU: 16 with AVX-512, 8 with AVX2."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return 8
    if " avx512f" in flags:
        return 16
    return 8 if " avx2" in flags else 0


def l2_bytes() -> int:
    """The per-core L2 cache size (Linux sysfs), or a common default."""
    import glob

    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(f"{d}/level") as f:
                level = f.read().strip()
            with open(f"{d}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        if level == "2":
            mult = {"K": 1024, "M": 1024 ** 2}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * mult
    return L2_DEFAULT
