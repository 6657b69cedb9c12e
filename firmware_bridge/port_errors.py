"""One short reason for a serial port that would not open, instead of pyserial's doubled "[Errno 2] ... [Errno 2]"."""

import errno
import os

_REASONS = {
    errno.ENOENT: "no such port (is the device plugged in? ls /dev/ttyUSB* /dev/ttyACM* lists the ports)",
    errno.EACCES: "permission denied (add the user to the 'dialout' group, then log in again)",
    errno.EBUSY: "the port is busy (another program has it open)",
    errno.ENXIO: "no device answers on this port (unplugged?)",
    errno.EIO: "input/output error (the device was unplugged or reset)",
}


def port_error_reason(e: BaseException) -> str:
    """Say why a port did not open, in one short phrase.

    Parameters
    ----------
    e : serial.SerialException or OSError
        What opening the port raised; pyserial's exception carries the operating system's ``errno``.

    Returns
    -------
    str
        For example ``'no such port (is the device plugged in? ...)'``; the exception's own text when its errno is
        unknown.
    """
    code = getattr(e, "errno", None)
    if code in _REASONS:
        return _REASONS[code]
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return str(e)
