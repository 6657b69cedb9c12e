"""neurohand: a real-time neural decoder for a prosthetic hand.

Subpackages, lowest layer first (each imports only those before it):
``neurohand.decoder`` (device: filters, features, adaptation, engines), ``neurohand.firmware_bridge`` (the serial
wire and simulated devices), ``neurohand.deploy`` (the device runtime), ``neurohand.training`` (torch model,
training, export), ``neurohand.calibration`` (the clinician's session); on top, the application: this package's own
modules ``neurohand.cli`` (the ``neurohand`` command), ``neurohand.demo``, ``neurohand.bench`` and
``neurohand.bench_latency``.
"""

__all__ = ["__version__"]
__version__ = "0.2.0"
