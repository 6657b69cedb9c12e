"""A synthetic patient: intrafascicular median/ulnar nerve recordings during a cued finger protocol.

Model
-----
*Kinematics.* The patient follows a cue protocol (:data:`MOVEMENTS`: each finger flexed and released, four
grips, rest between). Each repetition is the movement list in a random order. A trial is rest
(``rest_s``, uniform 1.5-2.5 s), the cue, a reaction delay (0.15-0.35 s), a minimum-jerk flexion (0.4-0.7 s)
to a target scaled by a per-trial amplitude (0.6-1.0), a hold (1.0-1.6 s) and a minimum-jerk release.
Fingers not asked to move follow the moving ones through enslavement (neighbours 15-35 %, as measured in
Zatsiorsky et al. 2000), plus 8-12 Hz physiological tremor and glove noise (about 0.005). Positions are
sampled at ``glove_fs_hz`` like a data glove; 0 is open, 1 fully flexed.

*Units.* Each nerve (median: the first half of the channels, ulnar: the second half) carries
``units_per_nerve`` motor units. A unit's primary finger follows the nerve's innervation (median: thumb,
index, middle, part of ring; ulnar: ring, little, thumb adduction) with random secondary weights on the
others. 75 % are flexor units, driven by their fingers' position and flexion velocity; 25 % are extensor units,
driven by release velocity. The firing rate is a sigmoid of the drive with a per-unit recruitment threshold
(low-threshold units first), from a spontaneous 1-8 spikes/s up to 40-120 spikes/s: nonlinear in position and
velocity. Spikes are an inhomogeneous Bernoulli process in 1 ms bins with sub-millisecond jitter.

*Electrodes.* Units and active sites lie in the nerve's cross-section (unit disk); a unit's amplitude on a
site is its own amplitude (log-normal, median 35 uV) times ``exp(-distance / 0.35)``, so each channel mixes a
few large units tuned to different fingers with many small ones. Spike waveforms are biphasic with 0.3-0.9 ms
duration and a per-unit polarity.

*Noise and interference.* White thermal noise of ``noise_uv`` RMS, a slow 1/f-like background below 100 Hz,
mains at ``mains_hz`` with its 3rd harmonic (5-30 uV per channel, slowly modulated), and motion artefacts
(about ``artefacts_per_min`` per minute: 2-8 Hz damped transients of 100-600 uV shared across channels).

*Days.* ``day`` 1 is the calibration day. Each later day multiplies channel gains by a log-normal step
(sigma 0.12), loses about 10 % of units and gains as many new ones, jitters every amplitude (sigma 0.1,
electrode micro-motion) and raises the noise floor by 5 %. The same ``seed`` always gives the same patient;
day ``k`` is reached through days ``1..k-1``.

Nothing here is tuned to make a decoder look good; the real data sets are the judge.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np
from scipy import signal as sps

from neurohand.decoder.recording import CUE_DTYPE, Recording
from neurohand.decoder.validation import check_int, check_positive, invalid_value

# (name, target flexion per finger: thumb, index, middle, ring, little)
MOVEMENTS: Tuple[Tuple[str, Tuple[float, ...]], ...] = (
    ("thumb_flexion", (1.0, 0.0, 0.0, 0.0, 0.0)),
    ("index_flexion", (0.0, 1.0, 0.0, 0.0, 0.0)),
    ("middle_flexion", (0.0, 0.0, 1.0, 0.0, 0.0)),
    ("ring_flexion", (0.0, 0.0, 0.0, 1.0, 0.0)),
    ("little_flexion", (0.0, 0.0, 0.0, 0.0, 1.0)),
    ("power_grip", (0.8, 1.0, 1.0, 1.0, 1.0)),
    ("pinch", (0.7, 0.7, 0.0, 0.0, 0.0)),
    ("tripod", (0.7, 0.7, 0.7, 0.0, 0.0)),
    ("point", (0.7, 0.0, 1.0, 1.0, 1.0)),
)
CLASS_NAMES = ("rest",) + tuple(m[0] for m in MOVEMENTS)
# Enslavement: row = moving finger, column = finger dragged along.
ENSLAVE = np.array(
    [
        [0.0, 0.10, 0.05, 0.03, 0.02],
        [0.10, 0.0, 0.30, 0.15, 0.08],
        [0.05, 0.20, 0.0, 0.35, 0.15],
        [0.03, 0.12, 0.30, 0.0, 0.40],
        [0.02, 0.06, 0.15, 0.35, 0.0],
    ]
)
# Probability of each primary finger for units of each nerve.
_INNERVATION = {
    "median": np.array([0.35, 0.30, 0.25, 0.10, 0.0]),
    "ulnar": np.array([0.20, 0.0, 0.0, 0.35, 0.45]),
}


@dataclass(frozen=True)
class SimulatorConfig:
    """Parameters of a simulated session.

    Parameters
    ----------
    minutes : float
        Length of the session.
    n_channels : int
        Recording sites; the first half on the median nerve, the rest on the ulnar (at least 2).
    fs_hz : float
        Sample rate of the neural signals.
    glove_fs_hz : float
        Sample rate of the finger positions.
    mains_hz : float
        Mains frequency (50 or 60).
    units_per_nerve : int
        Motor units per nerve in reach of the electrodes.
    noise_uv : float
        RMS of the white thermal noise, microvolts.
    artefacts_per_min : float
        Mean rate of motion artefacts.
    day : int
        Day of the session (1 = calibration day); later days drift.
    session : int
        Which session of that day: the same patient and electrodes, a different movement sequence and noise
        (held-out test sessions use another number than the training session).
    seed : int
        Identifies the patient; everything is deterministic for a seed.
    """

    minutes: float = 5.0
    n_channels: int = 16
    fs_hz: float = 10000.0
    glove_fs_hz: float = 100.0
    mains_hz: float = 50.0
    units_per_nerve: int = 40
    noise_uv: float = 4.0
    artefacts_per_min: float = 2.0
    day: int = 1
    session: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("minutes", self.minutes)
        check_int("n_channels", self.n_channels, minimum=2)
        check_positive("fs_hz", self.fs_hz)
        if self.fs_hz < 2000:
            raise invalid_value("fs_hz", "nerve spikes need at least 2000 Hz, got {}".format(
                self.fs_hz))
        check_positive("glove_fs_hz", self.glove_fs_hz)
        check_positive("mains_hz", self.mains_hz)
        check_int("units_per_nerve", self.units_per_nerve, minimum=1)
        check_positive("noise_uv", self.noise_uv, allow_zero=True)
        check_positive("artefacts_per_min", self.artefacts_per_min, allow_zero=True)
        check_int("day", self.day, minimum=1)
        check_int("session", self.session, minimum=1)
        check_int("seed", self.seed, minimum=0)


# ---------------------------------------------------------------------- kinematics
def min_jerk(x: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile at normalised times ``x`` in 0..1 (0 at 0, 1 at 1, zero velocity and acceleration at both).

    Parameters
    ----------
    x : np.ndarray, any shape
        Fraction of the movement's duration.
    """
    return 10 * x**3 - 15 * x**4 + 6 * x**5


def min_jerk_ramp(n: int) -> np.ndarray:
    """Return a minimum-jerk ramp from 0 to 1 over ``n`` samples, shape (n,)."""
    return min_jerk(np.linspace(0.0, 1.0, n))


def simulate_protocol(minutes: float, glove_fs_hz: float, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Finger trajectories, labels, repetitions and cues of a cued protocol at the glove rate.

    Returns
    -------
    dict
        ``positions`` (n, 5) in 0..1, ``labels`` (n,), ``repetitions`` (n,), ``cues`` list of
        (glove_sample, label, duration_glove_samples, name); the hidden intent: ``intent`` (n, 5) before tremor
        and noise, ``onsets`` list of (glove_sample, ramp_glove_samples, peak (5,)) where each movement starts.
    """
    n_total = int(round(minutes * 60 * glove_fs_hz))
    fs = glove_fs_hz
    target = np.zeros((n_total, 5))
    labels = np.zeros(n_total, np.int16)
    reps = np.zeros(n_total, np.int16)
    cues: List[Tuple[int, int, int, str]] = []
    onsets: List[Tuple[int, int, np.ndarray]] = []
    t = 0
    rep = 0
    while t < n_total:
        rep += 1
        for m in rng.permutation(len(MOVEMENTS)):
            name, tgt = MOVEMENTS[m]
            rest = int(rng.uniform(1.5, 2.5) * fs)
            react = int(rng.uniform(0.15, 0.35) * fs)
            up = max(2, int(rng.uniform(0.4, 0.7) * fs))
            hold = int(rng.uniform(1.0, 1.6) * fs)
            down = max(2, int(rng.uniform(0.4, 0.7) * fs))
            amp = rng.uniform(0.6, 1.0)
            cue_t = t + rest
            if cue_t >= n_total:
                t = n_total
                break
            on = cue_t + react
            vec = np.asarray(tgt) * amp
            # Enslaved fingers follow the moving ones.
            vec = np.clip(vec + (vec @ ENSLAVE) * rng.uniform(0.7, 1.3, 5), 0.0, 1.0)
            prof = np.concatenate([min_jerk_ramp(up), np.ones(hold), 1.0 - min_jerk_ramp(down)])
            end = min(on + len(prof), n_total)
            if on < n_total:
                target[on:end] = prof[: end - on, None] * vec[None, :]
                labels[on:end] = m + 1
            reps[t:end] = rep
            cues.append((cue_t, m + 1, react + up + hold, name))
            if on < n_total:
                onsets.append((on, up, vec))
            t = end
            if t >= n_total:
                break
    # Tremor (8-12 Hz) and glove noise.
    tt = np.arange(n_total) / fs
    tremor = np.zeros((n_total, 5))
    for j in range(5):
        f0 = rng.uniform(8.0, 12.0)
        tremor[:, j] = 0.004 * np.sin(2 * np.pi * f0 * tt + rng.uniform(0, 2 * np.pi))
    pos = np.clip(target * (1 + tremor * 5) + tremor + rng.normal(0, 0.005, target.shape), 0.0, 1.0)
    return {"positions": pos.astype(np.float32), "labels": labels, "repetitions": reps, "cues": cues,
            "intent": target, "onsets": onsets}


# ---------------------------------------------------------------------- patient and days
@dataclass
class _Patient:
    nerve: np.ndarray  # (U,) 0 median, 1 ulnar
    weights: np.ndarray  # (U, 5) finger tuning
    extensor: np.ndarray  # (U,) bool
    threshold: np.ndarray  # (U,)
    slope: np.ndarray  # (U,)
    base_rate: np.ndarray  # (U,)
    max_rate: np.ndarray  # (U,)
    vel_gain: np.ndarray  # (U,)
    template: np.ndarray  # (U,) index into templates
    polarity: np.ndarray  # (U,) +1/-1
    amplitude: np.ndarray  # (C, U) microvolts on each channel (0 for other nerve)
    gain: np.ndarray  # (C,)
    mains_amp: np.ndarray  # (C,)
    noise_scale: float


def _new_units(n: int, nerve_of: np.ndarray, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    weights = np.zeros((n, 5))
    for i in range(n):
        p = _INNERVATION["median" if nerve_of[i] == 0 else "ulnar"]
        primary = rng.choice(5, p=p)
        weights[i] = rng.uniform(0.0, 0.3, 5) * (rng.uniform(size=5) < 0.4)
        weights[i, primary] = 1.0
    return {
        "weights": weights,
        "extensor": rng.uniform(size=n) < 0.25,
        "threshold": rng.uniform(0.05, 0.6, n),
        "slope": rng.uniform(6.0, 14.0, n),
        "base_rate": rng.uniform(1.0, 8.0, n),
        "max_rate": rng.uniform(40.0, 120.0, n),
        "vel_gain": rng.uniform(0.1, 0.4, n),
        "template": rng.integers(0, 3, n),
        "polarity": rng.choice([-1.0, 1.0], n),
        "xy": _disk_points(n, rng),
        "strength": rng.lognormal(np.log(35.0), 0.5, n),
    }


def _disk_points(n: int, rng: np.random.Generator) -> np.ndarray:
    r = np.sqrt(rng.uniform(size=n))
    a = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _amplitudes(units: Dict[str, np.ndarray], nerve_of: np.ndarray, site_xy: np.ndarray,
                site_nerve: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(site_xy[:, None, :] - units["xy"][None, :, :], axis=-1)
    amp = units["strength"][None, :] * np.exp(-d / 0.35)
    amp[site_nerve[:, None] != nerve_of[None, :]] = 0.0
    return amp


def make_patient(config: SimulatorConfig) -> _Patient:
    """Build the simulated patient of ``config.seed`` as on ``config.day``."""
    rng = np.random.default_rng(config.seed)
    C, per = config.n_channels, config.units_per_nerve
    site_nerve = (np.arange(C) >= C // 2).astype(int)
    site_xy = _disk_points(C, rng) * 0.8
    nerve_of = np.repeat([0, 1], per)
    units = _new_units(2 * per, nerve_of, rng)
    amp = _amplitudes(units, nerve_of, site_xy, site_nerve)
    gain = np.ones(C)
    mains = rng.uniform(5.0, 30.0, C)
    noise_scale = 1.0
    for day in range(2, config.day + 1):
        drng = np.random.default_rng([config.seed, day])
        gain = gain * drng.lognormal(0.0, 0.12, C)
        lost = drng.uniform(size=2 * per) < 0.10
        if lost.any():
            fresh = _new_units(int(lost.sum()), nerve_of[lost], drng)
            for k, v in fresh.items():
                units[k] = units[k].copy()
                units[k][lost] = v
            amp = _amplitudes(units, nerve_of, site_xy, site_nerve)
        amp = amp * drng.lognormal(0.0, 0.10, amp.shape)
        noise_scale *= 1.05
        mains = mains * drng.lognormal(0.0, 0.2, C)
    return _Patient(
        nerve=nerve_of, weights=units["weights"], extensor=units["extensor"], threshold=units["threshold"],
        slope=units["slope"], base_rate=units["base_rate"], max_rate=units["max_rate"],
        vel_gain=units["vel_gain"], template=units["template"], polarity=units["polarity"], amplitude=amp,
        gain=gain, mains_amp=mains, noise_scale=noise_scale,
    )


def _templates(fs_hz: float) -> List[np.ndarray]:
    """Three biphasic spike shapes (0.3, 0.55, 0.9 ms), unit peak amplitude."""
    out = []
    for dur_ms in (0.3, 0.55, 0.9):
        n = max(4, int(round(3 * dur_ms * fs_hz / 1000.0)))
        t = np.linspace(-1.5, 1.5, n)
        w = -t * np.exp(-(t**2) * 2.0)  # derivative-of-Gaussian: a biphasic spike
        out.append(w / np.max(np.abs(w)))
    return out


def unit_rates(patient: _Patient, positions: np.ndarray, fs_hz: float) -> np.ndarray:
    """Compute the firing rate of every unit (spikes/s) for finger positions sampled at ``fs_hz``.

    Returns
    -------
    np.ndarray, shape (n, n_units)
    """
    vel = np.gradient(positions, axis=0) * fs_hz  # positions per second
    pos_drive = positions @ patient.weights.T / patient.weights.sum(axis=1)
    vel_drive = vel @ patient.weights.T / patient.weights.sum(axis=1)
    flex = pos_drive + patient.vel_gain * np.maximum(vel_drive, 0.0)
    ext = patient.vel_gain * 2.5 * np.maximum(-vel_drive, 0.0) + 0.15 * (1.0 - pos_drive)
    drive = np.where(patient.extensor[None, :], ext, flex)
    sig = 1.0 / (1.0 + np.exp(-patient.slope * (drive - patient.threshold)))
    return patient.base_rate + (patient.max_rate - patient.base_rate) * sig


class SignalSynthesizer:
    """The patient's nerve signals for finger positions, synthesised block by block with every state carried.

    Feeding the positions in one block or in many gives statistically the same signal (spike tails, the background
    filter, artefacts and mains phase all continue across blocks); a live simulated patient feeds one glove sample
    at a time, :func:`simulate_recording` a few seconds at a time.

    Parameters
    ----------
    patient : from :func:`make_patient`
    config : SimulatorConfig
    rng : np.random.Generator
    """

    BIN_HZ = 1000.0  # spikes are drawn in 1 ms bins

    def __init__(self, patient: _Patient, config: SimulatorConfig, rng: np.random.Generator) -> None:
        if (self.BIN_HZ / config.glove_fs_hz) != int(self.BIN_HZ / config.glove_fs_hz):
            raise invalid_value(
                "glove_fs_hz", "must divide 1000 Hz (e.g. 50, 100, 200), got {}".format(
                config.glove_fs_hz))
        self.patient, self.config, self.rng = patient, config, rng
        C = config.n_channels
        self.templates = _templates(config.fs_hz)
        self.sos_bg = sps.butter(2, 100.0, btype="lowpass", output="sos", fs=config.fs_hz)
        self._zi = np.zeros((self.sos_bg.shape[0], 2, C))
        self.art_gain = rng.uniform(0.3, 1.0, C)
        self.mains_phase = rng.uniform(0, 2 * np.pi, C)
        self._mod_phase = rng.uniform(0, 2 * np.pi)
        self._tail = np.zeros((0, C))  # spike waveforms and artefacts running past the last block
        self._last_pos = None  # last 1 ms position, for the velocity across blocks
        self.n_glove = 0
        self.n_samples = 0

    def _sample_of(self, glove_index: int) -> int:
        return int(glove_index * self.config.fs_hz // self.config.glove_fs_hz)

    def synthesize(self, positions: np.ndarray) -> np.ndarray:
        """Signals for the next ``positions``.

        Parameters
        ----------
        positions : np.ndarray, shape (m, 5)
            Finger positions at ``glove_fs_hz`` continuing the previous call's.

        Returns
        -------
        np.ndarray, shape (n, n_channels), float32 microvolts
            ``n`` is the number of samples the ``m`` glove samples span.
        """
        cfg, patient, rng = self.config, self.patient, self.rng
        positions = np.asarray(positions, float).reshape(-1, 5)
        fs, C = cfg.fs_hz, cfg.n_channels
        s0, s1 = self.n_samples, self._sample_of(self.n_glove + len(positions))
        n = s1 - s0
        per_glove = int(self.BIN_HZ / cfg.glove_fs_hz)
        # 1 ms positions interpolated linearly from the previous glove sample (streaming: the next is not known yet)
        prev = positions[:1] if self._last_pos is None else self._last_pos
        knots = np.concatenate([prev, positions])
        frac = (np.arange(len(positions) * per_glove) + 1) / per_glove
        i = np.minimum(frac.astype(int), len(positions))
        w = (frac - i)[:, None]
        pos_b = knots[i] * (1 - w) + knots[np.minimum(i + 1, len(positions))] * w
        if len(positions):
            self._last_pos = positions[-1:]
        rates = unit_rates(patient, np.concatenate([prev, pos_b]), self.BIN_HZ)[1:]
        fired = rng.uniform(size=rates.shape) < rates / self.BIN_HZ
        b_idx, u_idx = np.nonzero(fired)
        b0 = self.n_glove * per_glove
        spike = np.minimum(((b0 + b_idx + rng.uniform(size=len(b_idx))) * fs / self.BIN_HZ).astype(np.int64) - s0,
                           max(n - 1, 0))
        longest = max(len(t) for t in self.templates)
        x = np.zeros((n + longest, C))
        for k, tpl in enumerate(self.templates):
            sel = patient.template[u_idx] == k
            if not sel.any():
                continue
            imp = np.zeros((n, C))
            np.add.at(imp, spike[sel], (patient.amplitude[:, u_idx[sel]] * patient.polarity[u_idx[sel]]).T)
            x[: n + len(tpl) - 1] += sps.oaconvolve(imp, tpl[:, None], mode="full", axes=0)
        # Motion artefacts: 2-8 Hz damped transients shared across channels.
        n_art = rng.poisson(cfg.artefacts_per_min * n / fs / 60.0)
        for a_t in rng.uniform(0, n, n_art):
            f0, tau, a0 = rng.uniform(2, 8), rng.uniform(0.1, 0.3), rng.uniform(100, 600) * rng.choice([-1, 1])
            i0, k = int(a_t), int(5 * tau * fs)
            if i0 + k > len(x):
                x = np.concatenate([x, np.zeros((i0 + k - len(x), C))])
            tt = np.arange(k) / fs
            x[i0:i0 + k] += (a0 * np.exp(-tt / tau) * np.sin(2 * np.pi * f0 * tt))[:, None] * self.art_gain[None, :]
        m = min(len(self._tail), len(x))
        x[:m] += self._tail[:m]
        if len(self._tail) > len(x):
            x = np.concatenate([x, self._tail[len(x):]])
        self._tail = x[n:]
        out = x[:n]
        out += rng.normal(0.0, cfg.noise_uv * patient.noise_scale, (n, C))
        bg, self._zi = sps.sosfilt(self.sos_bg, rng.normal(0.0, 8.0, (n, C)), axis=0, zi=self._zi)
        out += 3.0 * bg
        t = np.arange(s0, s1) / fs
        mod = 1.0 + 0.2 * np.sin(2 * np.pi * 0.05 * t + self._mod_phase)
        ph = 2 * np.pi * cfg.mains_hz * t[:, None] + self.mains_phase[None, :]
        out += patient.mains_amp[None, :] * mod[:, None] * (np.sin(ph) + 0.3 * np.sin(3 * ph + self.mains_phase))
        self.n_glove += len(positions)
        self.n_samples = s1
        return (out * patient.gain[None, :]).astype(np.float32)


def channel_names_for(n_channels: int) -> Tuple[str, ...]:
    """``median0..``, then ``ulnar0..``: the first half of the sites lies in the median nerve."""
    half = n_channels // 2
    return tuple(["median{}".format(i) for i in range(half)] + ["ulnar{}".format(i) for i in range(n_channels - half)])


def hidden_intent(config: SimulatorConfig) -> Dict[str, Any]:
    """Return the protocol behind ``simulate_recording(config)`` (same draws), with its hidden intent and onsets."""
    return simulate_protocol(config.minutes, config.glove_fs_hz, np.random.default_rng(
        [config.seed, config.day, config.session]))


def simulate_recording(config: SimulatorConfig) -> Recording:
    """Simulate one session of the patient ``config.seed`` on ``config.day``.

    Returns
    -------
    Recording
        ``signals`` (n, n_channels) float32 in microvolts at ``fs_hz``, ``positions`` at ``glove_fs_hz``,
        per-sample labels and repetitions, cue events, ``signal_kind='nerve'``.
    """
    patient = make_patient(config)
    rng = np.random.default_rng([config.seed, config.day, config.session])
    proto = simulate_protocol(config.minutes, config.glove_fs_hz, rng)  # as hidden_intent(config): rng goes on
    synth = SignalSynthesizer(patient, config, rng)
    n_glove = len(proto["positions"])
    block = int(10 * config.glove_fs_hz)  # 10 s at a time keeps memory flat for long sessions
    out = np.concatenate([synth.synthesize(proto["positions"][i:i + block]) for i in range(0, n_glove, block)])
    n = len(out)
    fs = config.fs_hz
    glove_index = np.minimum(np.arange(n_glove) * fs // config.glove_fs_hz, n - 1).astype(np.int64)
    # Per-sample labels and repetitions from the glove-rate ones (zero-order hold).
    g_of_s = np.minimum((np.arange(n) * config.glove_fs_hz / fs).astype(np.int64), n_glove - 1)
    cues = np.array(
        [(glove_index[min(g, n_glove - 1)], lab, int(d * fs / config.glove_fs_hz), name.encode())
         for g, lab, d, name in proto["cues"]],
        dtype=CUE_DTYPE,
    ) if proto["cues"] else np.zeros(0, CUE_DTYPE)
    names = channel_names_for(config.n_channels)
    return Recording(
        signals=out,
        fs_hz=fs,
        signal_kind="nerve",
        channel_names=tuple(names),
        units="uV",
        positions=proto["positions"],
        position_index=glove_index,
        labels=proto["labels"][g_of_s],
        class_names=CLASS_NAMES,
        repetitions=proto["repetitions"][g_of_s],
        cues=cues,
        metadata={
            "patient_id": "sim-{}".format(config.seed),
            "session_id": "sim-{}-day{}{}".format(config.seed, config.day, "" if config.session == 1 else
                                                   "-s{}".format(config.session)),
            "device": "neurohand nerve simulator ({} sites, median/ulnar)".format(config.n_channels),
            "source": "simulator",
            "notes": "seed={} day={} minutes={} fs_hz={} mains_hz={}".format(
                config.seed, config.day, config.minutes, fs, config.mains_hz),
            "simulator_day": str(config.day),
            "mains_hz": "{:g}".format(config.mains_hz),
        },
    )
