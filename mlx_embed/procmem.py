"""The memory the OS charges this process, as that OS's memory pressure counts it.

Linux: the resident set (RSS). macOS: the physical footprint (``phys_footprint``: Activity Monitor's
Memory column, what memory pressure and jetsam act on), read with ``proc_pid_rusage``. On macOS RSS
leaves out the IOAccelerator memory of Metal buffers, which hold an MLX model's weights and
activations, and counts clean file pages the footprint does not, so it cannot say whether a model fits.

Imports nothing from mlx_embed: a fresh interpreter can load this file by path before the package.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import psutil

_RUSAGE_INFO_V4 = 4
_V4_WORDS = 38  # struct rusage_info_v4: a 16-byte uuid, then 35 uint64 fields (37 words; one to spare)
_PHYS_FOOTPRINT = 2 + 7  # ri_phys_footprint, counted in uint64 words
_LIFETIME_MAX_FOOTPRINT = 2 + 28  # ri_lifetime_max_phys_footprint


@functools.cache
def _libsystem() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("/usr/lib/libSystem.B.dylib")
    except OSError:
        return None


def _darwin_footprint(word: int = _PHYS_FOOTPRINT) -> int | None:
    lib, info = _libsystem(), (ctypes.c_uint64 * _V4_WORDS)()
    try:
        if lib is not None and lib.proc_pid_rusage(ctypes.c_int(os.getpid()), ctypes.c_int(_RUSAGE_INFO_V4), info) == 0:
            return int(info[word])
    except AttributeError:
        pass
    return None


METRIC = "phys_footprint" if sys.platform == "darwin" and _darwin_footprint() is not None else "rss"
_process = psutil.Process()


def process_memory() -> int:
    """Bytes charged to this process now: ``phys_footprint`` on macOS, RSS elsewhere (see ``METRIC``)."""
    if METRIC == "phys_footprint":
        got = _darwin_footprint()
        if got is not None:
            return got
    return _process.memory_info().rss


def peak_memory() -> int:
    """The most bytes charged to this process since it started, by the same measure as
    :func:`process_memory`: the lifetime peak footprint on macOS, the peak RSS (``VmHWM``) on Linux."""
    if METRIC == "phys_footprint":
        got = _darwin_footprint(_LIFETIME_MAX_FOOTPRINT)
        if got is not None:
            return got
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def cgroup_memory_limit(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """The memory limit of this process's cgroup and its ancestors on Linux (a container's ``--memory``,
    which the OOM killer enforces whatever the host's RAM), in bytes; None where none is set or readable."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one hierarchy, memory.max in each folder
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):  # cgroup v1: the memory controller's own hierarchy
            base, name = os.path.join(root, "memory"), "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):  # the cgroup, then each ancestor up to the root
            try:
                with open(os.path.join(base, *parts[:depth], name)) as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) < 1 << 60:  # "max" (v2) or ~2^63 (v1): no limit
                limits.append(int(text))
    return min(limits) if limits else None
