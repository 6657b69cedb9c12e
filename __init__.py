"""neurohand: a real-time neural decoder for a prosthetic hand.

Subpackages, lowest layer first (each imports only those before it):
``neurohand.decoder`` (device: filters, features, adaptation, engines), ``neurohand.firmware_bridge`` (the serial
wire and simulated devices), ``neurohand.deploy`` (the device runtime; its ``cli``, ``demo`` and ``bench`` modules
are the application layer), ``neurohand.training`` (torch model, training, export), ``neurohand.calibration``
(the clinician's session).
"""

__all__ = ["__version__"]
__version__ = "0.2.0"
