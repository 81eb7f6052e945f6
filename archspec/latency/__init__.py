"""Latency prediction: per-device profiles that predict milliseconds from a spec.

``kernels`` (fusion rules: IR graph -> backend kernels), ``model`` (per-kernel-type fitted
predictor), ``profile`` (the profile file: device, versions, settings), ``check``
(predicted vs measured), ``report`` (the latency column of cost/diff/sweep). Calibration,
by job: ``calibrate`` (the measurement run), ``networks`` (the networks it measures),
``timing`` (onnxruntime sessions and timers), ``attribution`` (profiler events to IR
kernels), ``probes`` (hardware: L2 size, NCHWc block), ``fitting`` (the fit and its
environment), ``raw`` (saved measurements and their record). See docs/latency.md.
"""
