"""The calling process's peak memory, for benchmarks and the training report (no torch, Python 3.8)."""

import resource


def peak_rss_mb() -> float:
    """Return the calling process's resident-memory high-water mark in MB.

    ``VmHWM`` from ``/proc/self/status`` belongs to this process image (``getrusage``'s ``ru_maxrss`` survives exec,
    so a child would report its parent's size when the parent was larger); ``ru_maxrss`` where /proc is missing.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
