"""Latency prediction: per-device profiles that predict milliseconds from a spec.

``kernels`` (fusion rules: IR graph -> backend kernels), ``calibrate`` (microbenchmark
sampling plan and measurement), ``model`` (per-kernel-type fitted predictor),
``profile`` (the profile file: device, versions, settings), ``check`` (predicted vs
measured). See docs/latency.md.
"""
