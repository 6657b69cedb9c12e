"""Keyboard sink of the runtime: key events through pynput, never leaving a key held down.

Every held key is released on disable (toggle key or gesture), on a decoder fault or signal loss (the runtime calls
:meth:`KeysSink.safe`), on exit and on Ctrl-C/SIGTERM (:meth:`KeysSink.close` from the runtime's ``finally``).
``dry_run`` prints what would be pressed and sends nothing.
"""

import sys
import threading
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.errors import DeviceError
from neurohand.firmware_bridge.devices import Sink, first_error

from .keymap import KeyMapper, load_profile


def _keyboard():
    """Return pynput's ``keyboard`` module, or a one-line error saying how to get it working.

    Raises
    ------
    DeviceError
        pynput is not installed (``pip install 'neurohand[keys]'``), or it is but has no display/backend to use.
    """
    try:
        from pynput import keyboard
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "pynput":
            raise
        raise DeviceError("--keys needs pynput, which is not installed: pip install 'neurohand[keys]'") from None
    except ImportError as e:  # pynput is there but its backend is not (no X display, no uinput)
        raise DeviceError("--keys: pynput cannot send key presses here ({}); run inside the desktop session "
                          "(DISPLAY set) or see pynput's platform notes".format(e)) from None
    return keyboard


def pynput_key(name: str):
    """Return the pynput key object for a profile key name."""
    keyboard = _keyboard()

    if len(name) == 1:
        return keyboard.KeyCode.from_char(name)
    return getattr(keyboard.Key, name)


class KeysSink(Sink):
    """Decoded frames -> keystrokes.

    Parameters
    ----------
    profile : str
        TOML profile (validated against ``class_names``).
    class_names : sequence of str
    dry_run : bool
        Print the events instead of sending them.
    start_enabled : bool
        Output starts disabled (the default) until the toggle key or gesture.
    """

    name = "keys"

    def __init__(self, profile: str, class_names: Sequence[str], *, dry_run: bool = False,
                 start_enabled: bool = False, out=None) -> None:
        self.profile = load_profile(profile, class_names=class_names)
        self.mapper = KeyMapper(self.profile, list(class_names), enabled=start_enabled)
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.sent: List[Tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._controller = None
        self._listener = None
        if not dry_run:
            keyboard = _keyboard()
            self._controller = keyboard.Controller()
            if self.profile.toggle_key:
                toggle = pynput_key(self.profile.toggle_key)

                def on_press(key):
                    if key == toggle:
                        with self._lock:
                            self._emit(self.mapper.set_enabled(not self.mapper.enabled))

                self._listener = keyboard.Listener(on_press=on_press)
                self._listener.start()
                self._listener.wait()  # listening before anyone is told to press the toggle key
            if not start_enabled:
                ways = [w for w in ("{} is pressed".format(self.profile.toggle_key) if self.profile.toggle_key else "",
                                    "the {} gesture is made".format(self.profile.toggle_gesture)
                                    if self.profile.toggle_gesture else "") if w]
                print("keyboard output is off until {}".format(" or ".join(ways) or "enabled"), file=sys.stderr,
                      flush=True)

    def _emit(self, events) -> None:
        for kind, key in events:
            self.sent.append((time.monotonic(), kind, key))
            if self.dry_run:
                print("{} {}".format(kind, key), file=self.out, flush=True)
                continue
            k = pynput_key(key)
            if kind == "press":
                self._controller.press(k)
            else:
                self._controller.release(k)

    def write(self, command: np.ndarray, probabilities: Optional[np.ndarray] = None) -> bool:
        """Map one frame to key events and send them."""
        probs = probabilities if probabilities is not None else np.eye(len(self.mapper.class_names))[0]
        with self._lock:
            try:
                self._emit(self.mapper.step(command, probs, time.monotonic()))
            except Exception:
                self._emit(self.mapper.release_all())
                raise
        return True

    def safe(self) -> bool:
        """Release every held key (faults, signal loss)."""
        with self._lock:
            self._emit(self.mapper.release_all())
        return True

    def close(self) -> None:
        """Release everything and stop listening."""
        self.safe()
        if self._listener is not None:
            self._listener.stop()


class MultiSink(Sink):
    """Send every command to several sinks (e.g. the hand and the keyboard)."""

    name = "multi"

    def __init__(self, sinks) -> None:
        self.sinks = list(sinks)
        self.safe_posture = self.sinks[0].safe_posture  # the first sink moves (the hand), the others follow it

    def start_posture(self):
        """Where the first sink (the hand) starts."""
        return self.sinks[0].start_posture()

    def link_error(self):
        """Return the first link error among the sinks."""
        return first_error(self.sinks)

    def write(self, command, probabilities=None) -> bool:
        """Write to all; False if any failed."""
        return all([s.write(command, probabilities) for s in self.sinks])

    def safe(self) -> bool:
        """Put every sink in its safe state."""
        return all([s.safe() for s in self.sinks])

    def close(self) -> None:
        """Close every sink."""
        for s in self.sinks:
            s.close()
