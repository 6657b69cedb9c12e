"""Tests' shorthand for :class:`calibration.options.CalibrateOptions`: flat keyword names, as on the command line."""

from dataclasses import replace

from neurohand.calibration.options import CALIBRATE_ARGUMENTS, CalibrateOptions

# a flat name (the option's argparse dest without its part, or sim_* for the simulator) -> its path in the options
PATHS = {a.path.rpartition(".")[2] if not a.path.startswith("simulator.") else "sim_" + a.path.split(".")[1]: a.path
         for a in CALIBRATE_ARGUMENTS}
PATHS.update({"fast": "simulator.fast", "sim_session": "simulator.session"})


def changed(opts: CalibrateOptions, **flat) -> CalibrateOptions:
    """``opts`` with the options named by their flat names changed (``source=``, ``sim_channels=``, ``epochs=``)."""
    top, parts = {}, {}
    for name, value in flat.items():
        part, _, field = PATHS[name].rpartition(".")
        (parts.setdefault(part, {}) if part else top)[field] = value
    return replace(opts, **top, **{p: replace(getattr(opts, p), **kw) for p, kw in parts.items()})


def flat(**kw) -> CalibrateOptions:
    """Build :class:`CalibrateOptions` from flat names (``patient`` and ``store`` required)."""
    return changed(CalibrateOptions(patient=kw.pop("patient"), store=kw.pop("store")), **kw)
