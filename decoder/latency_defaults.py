"""The latency defaults, chosen on validation data (``experiments/latency_sweep.py``, docs/results.md).

The feature windows are the signal kinds' defaults in :mod:`neurohand.decoder.feature_config`.
"""

DEFAULT_LEAD_MS = {"nerve": 60.0, "emg": 0.0, "envelope": 120.0}
"""Target lead per signal kind where ``loss.target_lead_ms`` is None (ms). Raw EMG has no recording with finger
positions here to choose one on, so it keeps 0."""

DEFAULT_SMOOTHING_MS = 0.0
"""The commands' smoothing an exported bundle carries unless ``neurohand export --smoothing-ms`` says otherwise."""
