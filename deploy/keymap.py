"""Keyboard and game control: decoded fingers and gestures to key presses, from a validated TOML profile.

This module is the pure logic (no X server, no pynput): :func:`load_profile` validates a profile and names the line
of any error; :class:`KeyMapper` turns each decoded frame into press/release events with hysteresis, hold and tap
modes, minimum hold and re-trigger times, a rate limit that never drops a release, and an enable toggle that starts
off. :meth:`KeyMapper.release_all` returns the releases for every held key (used on disable, exit, faults).

Profile format::

    [keys]
    toggle_gesture = "power_grip"   # optional: a class that toggles output on/off
    toggle_key = "f12"              # optional: a real key that toggles output (handled by the sink); never an output
    max_events_per_s = 30
    allow_system_keys = false       # true: let bindings reach system combos (ctrl+alt+delete, alt+f4, cmd+...)

    [[binding]]
    finger = "thumb"                # or: class = "pinch", or: combo = "fist" (all fingers flexed)
    press = 0.6                     # threshold to activate (finger, combo) / min_confidence for a class
    release = 0.4                   # lower threshold to deactivate (hysteresis)
    key = "w"                       # a key or a combination: "ctrl+f"
    mode = "hold"                   # hold: down while active; tap: one press per activation
    min_hold_ms = 40
    retrigger_ms = 200
"""

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.vocabulary import FINGERS

COMBOS = {"fist": (0, 1, 2, 3, 4), "pinch_fingers": (0, 1), "point_away": (0, 2, 3, 4)}
MODES = ("hold", "tap")
_NAMED = ("space", "enter", "tab", "esc", "backspace", "shift", "ctrl", "alt", "up", "down", "left", "right",
          "home", "end", "page_up", "page_down", "insert", "delete", "caps_lock", "cmd")
KEY_NAMES = frozenset(list("abcdefghijklmnopqrstuvwxyz0123456789") + list(_NAMED) +
                      ["f{}".format(i) for i in range(1, 21)])


class ProfileError(InvalidValueError):
    """A keyboard profile is invalid; the message names the line."""


@dataclass(frozen=True)
class Binding:
    """One rule: a source (finger, class or combo), thresholds, keys and timing."""

    source: str  # "finger" | "class" | "combo"
    target: str
    press: float
    release: float
    keys: Tuple[str, ...]
    mode: str = "hold"
    min_hold_ms: float = 40.0
    retrigger_ms: float = 200.0
    line: int = 0


@dataclass(frozen=True)
class Profile:
    """A validated profile."""

    bindings: Tuple[Binding, ...]
    toggle_gesture: Optional[str] = None
    toggle_key: Optional[str] = None
    max_events_per_s: float = 30.0


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib  # novermin - only on 3.11+, tomli before
    else:  # pragma: no cover - Python 3.8-3.10
        import tomli as tomllib
    return tomllib


def _parse_keys(text: str, line: int) -> Tuple[str, ...]:
    keys = tuple(k.strip().lower() for k in str(text).split("+"))
    for k in keys:
        if k not in KEY_NAMES:
            raise ProfileError("line {}: unknown key name {!r}; use one of a-z, 0-9, f1-f20, {}".format(
                line, k, ", ".join(_NAMED)))
    return keys


BINDING_FIELDS = ("finger", "class", "combo", "press", "release", "min_confidence", "key", "mode", "min_hold_ms",
                  "retrigger_ms")
KEYS_FIELDS = ("toggle_gesture", "toggle_key", "max_events_per_s", "allow_system_keys")
SYSTEM_COMBOS = tuple([("ctrl", "alt", "delete"), ("ctrl", "alt", "backspace"), ("alt", "f4"), ("cmd",)]
                      + [("ctrl", "alt", "f{}".format(i)) for i in range(1, 13)])
"""Key sets the operating system acts on (log out, kill the X server, close the window, switch virtual terminal, the
super/cmd key's shortcuts). Any binding can be held while any other fires, so a profile whose bound keys together
contain one is refused unless it says ``allow_system_keys = true``."""
LIMITS = {"press": (0.0, 1.0), "release": (0.0, 1.0), "min_confidence": (0.0, 1.0), "min_hold_ms": (0.0, 10000.0),
          "retrigger_ms": (0.0, 60000.0), "max_events_per_s": (1.0, 100.0)}
"""Bounds of every number in a profile (inclusive). The rate limit is at least one event a second and at most 100:
NaN, infinity, zero or a negative rate would drop every press or none."""


def _number(value: object, name: str, line: int) -> float:
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError("line {}: Invalid value for {!r}: a number in {:g}..{:g}, got {!r}".format(
            line, name, lo, hi, value))
    x = float(value)
    if not (lo <= x <= hi):  # NaN fails this too
        raise ProfileError("line {}: Invalid value for {!r}: a number in {:g}..{:g}, got {!r}".format(
            line, name, lo, hi, value))
    return x


def _string(value: object, name: str, line: int) -> str:
    if not isinstance(value, str) or not value:
        raise ProfileError("line {}: Invalid value for {!r}: a non-empty string, got {!r}".format(line, name, value))
    return value


PROFILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
"""The profiles that come with neurohand (installed with it): ``fps``, ``shooter``."""


def packaged_profiles() -> List[str]:
    """Return the names of the profiles that come with neurohand."""
    return sorted(f[:-5] for f in os.listdir(PROFILES_DIR) if f.endswith(".toml"))


def profile_path(name: str) -> str:
    """Return the file of a profile given as a path, or by the name of one that comes with neurohand (``fps``).

    Raises
    ------
    ProfileError
        Neither a file nor a packaged profile's name: one line naming the packaged ones.
    """
    if os.path.isfile(name):
        return name
    stem = name[:-5] if name.endswith(".toml") else name
    packaged = os.path.join(PROFILES_DIR, stem + ".toml")
    if os.path.sep not in name and os.path.isfile(packaged):
        return packaged
    raise ProfileError("No keyboard profile {!r}: not a file, nor one of the profiles that come with neurohand ({}); "
                       "give a TOML file's path or one of those names".format(name, ", ".join(packaged_profiles())))


def load_profile(path: str, *, class_names: Optional[Sequence[str]] = None) -> Profile:
    """Read and validate a TOML profile.

    Parameters
    ----------
    path : str
        A TOML file, or the name of a profile that comes with neurohand (:func:`profile_path`).
    class_names : sequence of str, optional
        The model's classes; class bindings naming anything else are an error (checked only when given).

    Raises
    ------
    ProfileError
        With the line of the offending binding or key: TOML syntax, unknown section, field, key or class name,
        a value of the wrong type or outside :data:`LIMITS`, overlapping thresholds (``release >= press``), unknown
        mode, no binding at all.
    """
    path = profile_path(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProfileError("{}: not UTF-8 text ({})".format(path, e)) from None
    try:
        doc = _toml().loads(text)
    except Exception as e:  # tomllib.TOMLDecodeError carries the line in its message
        raise ProfileError("{}: {}".format(path, e)) from None
    lines = text.splitlines()
    starts = [i + 1 for i, ln in enumerate(lines) if re.match(r"^\s*\[\[binding\]\]", ln)]
    keys_at = next((i + 1 for i, ln in enumerate(lines) if re.match(r"^\s*\[keys\]", ln)), 1)

    def find(a: int, key: str) -> int:
        """Line of ``key = ...`` in the section starting at line ``a`` (``a`` when not found)."""
        for i in range(a + 1, len(lines) + 1):
            if re.match(r"^\s*\[", lines[i - 1]):
                break
            if re.match(r"^\s*{}\s*=".format(re.escape(key)), lines[i - 1]):
                return i
        return a

    def line_of(block: int, key: str) -> int:
        return find(starts[block], key) if block < len(starts) else 1

    unknown_top = set(doc) - {"keys", "binding"}
    if unknown_top:
        raise ProfileError("{}: unknown section(s) {}; allowed [keys] and [[binding]]".format(
            path, sorted(unknown_top)))
    keys_section = doc.get("keys", {})
    if not isinstance(keys_section, dict):
        raise ProfileError("line {}: 'keys' must be a table ([keys]), got {!r}".format(keys_at, keys_section))
    unknown = sorted(set(keys_section) - set(KEYS_FIELDS))
    if unknown:
        raise ProfileError("line {}: unknown field {!r} in [keys]; allowed {}".format(
            find(keys_at, unknown[0]), unknown[0], ", ".join(KEYS_FIELDS)))
    blocks = doc.get("binding", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise ProfileError("{}: 'binding' must be an array of tables, each starting with [[binding]]".format(path))
    if not blocks:
        raise ProfileError("{}: the profile has no [[binding]]; it would never press a key".format(path))
    bindings = []
    for k, b in enumerate(blocks):
        unknown = sorted(set(b) - set(BINDING_FIELDS))
        if unknown:
            raise ProfileError("line {}: unknown field {!r} in a binding; allowed {}".format(
                line_of(k, unknown[0]), unknown[0], ", ".join(BINDING_FIELDS)))
        sources = [s for s in ("finger", "class", "combo") if s in b]
        if len(sources) != 1:
            raise ProfileError("line {}: a binding needs exactly one of finger, class, combo; got {}".format(
                starts[k], sources or "none"))
        source = sources[0]
        ln = line_of(k, source)
        target = _string(b[source], source, ln)
        if source == "finger" and target not in FINGERS:
            raise ProfileError("line {}: unknown finger {!r}; allowed {}".format(ln, target, ", ".join(FINGERS)))
        if source == "combo" and target not in COMBOS:
            raise ProfileError("line {}: unknown combo {!r}; allowed {}".format(ln, target, ", ".join(COMBOS)))
        if source == "class" and class_names is not None and target not in class_names:
            raise ProfileError("line {}: unknown class name {!r}; the model knows {}".format(
                ln, target, ", ".join(class_names)))
        if "key" not in b:
            raise ProfileError("line {}: binding has no key".format(starts[k]))
        keys = _parse_keys(_string(b["key"], "key", line_of(k, "key")), line_of(k, "key"))
        if "press" in b and "min_confidence" in b:
            raise ProfileError("line {}: give press or min_confidence, not both".format(line_of(k, "min_confidence")))
        pkey = "press" if "press" in b else "min_confidence"
        press = _number(b[pkey], pkey, line_of(k, pkey)) if pkey in b else (0.6 if source != "class" else 0.8)
        release = _number(b["release"], "release", line_of(k, "release")) if "release" in b else press - 0.2
        if not (0.0 <= release < press <= 1.0):
            raise ProfileError("line {}: overlapping thresholds: need 0 <= release < press <= 1, got press {} and "
                               "release {}".format(line_of(k, "release" if "release" in b else pkey), press,
                                                   release))
        mode = b.get("mode", "hold")
        if mode not in MODES:
            raise ProfileError("line {}: Invalid value for 'mode': allowed 'hold', 'tap', got {!r}".format(
                line_of(k, "mode"), mode))
        timing = [_number(b[name], name, line_of(k, name)) if name in b else default
                  for name, default in (("min_hold_ms", 40.0), ("retrigger_ms", 200.0))]
        bindings.append(Binding(source, target, press, release, keys, mode, timing[0], timing[1], starts[k]))
    gesture = keys_section.get("toggle_gesture")
    if gesture is not None:
        _string(gesture, "toggle_gesture", find(keys_at, "toggle_gesture"))
        if class_names is not None and gesture not in class_names:
            raise ProfileError("line {}: toggle_gesture {!r} is not a class of the model ({})".format(
                find(keys_at, "toggle_gesture"), gesture, ", ".join(class_names)))
    toggle_key = keys_section.get("toggle_key")
    if toggle_key is not None:
        ln = find(keys_at, "toggle_key")
        _parse_keys(_string(toggle_key, "toggle_key", ln), ln)
    rate = keys_section.get("max_events_per_s", 30.0)
    rate = _number(rate, "max_events_per_s", find(keys_at, "max_events_per_s"))
    allow_system = keys_section.get("allow_system_keys", False)
    if not isinstance(allow_system, bool):
        raise ProfileError("line {}: Invalid value for 'allow_system_keys': true or false, got {!r}".format(
            find(keys_at, "allow_system_keys"), allow_system))
    _check_key_sets(bindings, toggle_key, rate, allow_system, find(keys_at, "toggle_key"))
    return Profile(tuple(bindings), gesture, toggle_key, rate)


def _check_key_sets(bindings: List[Binding], toggle_key: Optional[str], rate: float, allow_system: bool,
                    toggle_line: int) -> None:
    """Refuse combinations that can never fire, the toggle key as an output, and reachable system combos."""
    for b in bindings:
        if len(set(b.keys)) != len(b.keys):
            raise ProfileError("line {}: the key combination {!r} names a key twice".format(b.line, "+".join(b.keys)))
        if len(b.keys) > rate:
            raise ProfileError("line {}: the key combination {!r} is {} key presses, more than max_events_per_s = "
                               "{:g}: it could never fire".format(b.line, "+".join(b.keys), len(b.keys), rate))
    if toggle_key is not None:
        toggle = set(_parse_keys(toggle_key, toggle_line))
        for b in bindings:
            if toggle & set(b.keys):
                raise ProfileError("line {}: the toggle key {!r} is also bound as an output (line {}); the key that "
                                   "switches output on and off must not be pressed by it".format(
                                       toggle_line, toggle_key, b.line))
    if allow_system:
        return
    bound = {k: b.line for b in reversed(bindings) for k in b.keys}  # each key's first binding
    for combo in SYSTEM_COMBOS:
        if all(k in bound for k in combo):
            raise ProfileError("line {}: the bindings can press {} together (lines {}), a combination the system "
                               "acts on; bind other keys, or set allow_system_keys = true in [keys]".format(
                                   max(bound[k] for k in combo), "+".join(combo),
                                   ", ".join(str(x) for x in sorted({bound[k] for k in combo}))))


@dataclass
class _BindingState:
    active: bool = False  # level past the press threshold (and not yet back below release)
    armed: bool = True  # tap: the binding went inactive since its last trigger
    pressed: bool = False
    pressed_at: float = -1e9
    last_trigger: float = -1e9


@dataclass
class KeyMapper:
    """Frame-by-frame key events from decoded positions and class probabilities. Output starts disabled."""

    profile: Profile
    class_names: Sequence[str]
    enabled: bool = False
    _states: List[_BindingState] = field(default_factory=list)
    _held: Dict[str, int] = field(default_factory=dict)
    _event_times: List[float] = field(default_factory=list)
    _toggle_active: bool = False

    def __post_init__(self) -> None:
        self._states = [_BindingState() for _ in self.profile.bindings]

    def _level(self, b: Binding, positions: np.ndarray, probs: np.ndarray) -> float:
        if b.source == "finger":
            return float(positions[FINGERS.index(b.target)])
        if b.source == "combo":
            return float(np.min(positions[list(COMBOS[b.target])]))
        k = list(self.class_names).index(b.target) if b.target in self.class_names else -1
        return float(probs[k]) if k >= 0 else 0.0

    def _press(self, keys: Tuple[str, ...], t: float, out: list) -> bool:
        recent = [x for x in self._event_times if t - x < 1.0]
        self._event_times = recent
        if len(recent) + len(keys) > self.profile.max_events_per_s:
            return False  # rate limit: presses may be dropped, releases never
        for k in keys:
            if self._held.get(k, 0) == 0:
                out.append(("press", k))
                self._event_times.append(t)
            self._held[k] = self._held.get(k, 0) + 1
        return True

    def _release(self, keys: Tuple[str, ...], out: list) -> None:
        for k in reversed(keys):
            n = self._held.get(k, 0)
            if n <= 1:
                self._held.pop(k, None)
                if n == 1:
                    out.append(("release", k))
            else:
                self._held[k] = n - 1

    def set_enabled(self, enabled: bool) -> List[Tuple[str, str]]:
        """Turn output on or off; turning it off releases every held key."""
        self.enabled = bool(enabled)
        return [] if self.enabled else self.release_all()

    def release_all(self) -> List[Tuple[str, str]]:
        """Release events for every held key, and forget the activations."""
        out = [("release", k) for k in list(self._held)]
        self._held.clear()
        for s in self._states:
            s.pressed = False
        return out

    def step(self, positions: np.ndarray, probabilities: np.ndarray, t: float) -> List[Tuple[str, str]]:
        """Events ``[("press"|"release", key), ...]`` for one decoded frame at time ``t`` (seconds)."""
        positions = np.asarray(positions, float)
        probs = np.asarray(probabilities, float)
        out: List[Tuple[str, str]] = []
        g = self.profile.toggle_gesture
        if g is not None and g in self.class_names:
            p = float(probs[list(self.class_names).index(g)])
            if p >= 0.9 and not self._toggle_active:
                self._toggle_active = True
                out += self.set_enabled(not self.enabled)
            elif p < 0.5:
                self._toggle_active = False
        for b, s in zip(self.profile.bindings, self._states):
            level = self._level(b, positions, probs)
            if not s.active and level >= b.press:
                s.active = True
            elif s.active and level <= b.release:
                s.active = False
            if not self.enabled:
                continue
            if b.mode == "hold":
                if s.active and not s.pressed:
                    if self._press(b.keys, t, out):
                        s.pressed, s.pressed_at = True, t
                elif not s.active and s.pressed and t - s.pressed_at >= b.min_hold_ms / 1000.0:
                    self._release(b.keys, out)
                    s.pressed = False
            else:  # tap: one press per activation, released after min_hold_ms
                if s.pressed and t - s.pressed_at >= b.min_hold_ms / 1000.0:
                    self._release(b.keys, out)
                    s.pressed = False
                if s.active and s.armed and not s.pressed and t - s.last_trigger >= b.retrigger_ms / 1000.0:
                    if self._press(b.keys, t, out):
                        s.pressed, s.pressed_at, s.last_trigger, s.armed = True, t, t, False
                if not s.active:
                    s.armed = True
        return out
