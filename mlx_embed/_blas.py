"""Use the system OpenBLAS for MLX's CPU matmuls on Linux.

MLX's Linux CPU wheel links a reference BLAS (4-8 GFLOP/s for fp32 matmul on our 2-core x86 boxes,
against 230-245 with OpenBLAS). Loading OpenBLAS's ``libblas.so.3`` with ``RTLD_GLOBAL`` before
``mlx.core`` is first imported makes its ``cblas_sgemm`` the one MLX calls. Results are the same
sgemm to float32 rounding. Nothing happens on macOS (Metal and Accelerate), when ``mlx.core`` was
imported earlier, or when ``MLX_EMBED_OPENBLAS=0``. ``MLX_EMBED_OPENBLAS=/path/libblas.so`` picks
a library. Debian/Ubuntu: ``apt-get install libopenblas0-pthread``.

OpenBLAS picks its kernels by CPU model, and a release older than the CPU falls back to a generic one:
Debian 12's 0.3.21 takes a Xeon of model 207 (Emerald Rapids) for a Prescott, SSE3 kernels at 52 GFLOP/s
against 235-277 with its AVX-512 ones. So the library is loaded with ``OPENBLAS_CORETYPE`` set from the CPU's
own feature flags (AVX-512 with bf16: Cooperlake; AVX-512: SkylakeX; AVX2 and FMA: Haswell), for the load
only, unless the user set it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
import threading
import warnings
from collections.abc import Iterator

CANDIDATES = (
    "/usr/lib/{arch}-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/{arch}-linux-gnu/openblas-openmp/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
)

loaded: str | None = None
reason: str = "not tried"
core: str | None = None  # the kernels OpenBLAS chose (openblas_get_corename)

_AVX512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}  # what OpenBLAS's SkylakeX kernels use


def core_for(flags: set[str]) -> str | None:
    """The OpenBLAS core type whose kernels a CPU with these ``/proc/cpuinfo`` flags runs best, or None (leave
    it to OpenBLAS)."""
    if _AVX512 <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


@contextlib.contextmanager
def _core_type() -> Iterator[None]:
    """``OPENBLAS_CORETYPE`` from the CPU's flags while OpenBLAS initializes (it reads it once, when loaded);
    afterwards the environment is as it was, so a later OpenBLAS (numpy's) detects its own."""
    chosen = None if "OPENBLAS_CORETYPE" in os.environ else core_for(_cpu_flags())
    if chosen:
        os.environ["OPENBLAS_CORETYPE"] = chosen
    try:
        yield
    finally:
        if chosen:
            del os.environ["OPENBLAS_CORETYPE"]


def _candidates() -> list[str]:
    """The system OpenBLAS paths tried, for this machine's architecture."""
    return [p.format(arch=platform.machine()) for p in CANDIDATES]


def interpose() -> str | None:
    """Load OpenBLAS globally if possible; return its path. Safe to call more than once."""
    global loaded, reason, core
    if loaded is not None:
        return loaded
    setting = os.environ.get("MLX_EMBED_OPENBLAS", "1")
    if sys.platform != "linux":
        reason = "not Linux"
    elif setting == "0":
        reason = "disabled by MLX_EMBED_OPENBLAS=0"
    elif "mlx.core" in sys.modules:
        reason = "mlx.core was imported before mlx_embed"
        found = next((p for p in _candidates() if os.path.exists(p)), None)
        mx = sys.modules["mlx.core"]
        if found and mx.default_device() == mx.cpu:
            warnings.warn(
                f"mlx_embed: mlx.core was imported before mlx_embed, so MLX's CPU matmuls use its bundled reference "
                f"BLAS, not {found} (encoding several times slower): import mlx_embed before mlx and mlx_lm, or set "
                "MLX_EMBED_OPENBLAS=0 to keep the bundled BLAS without this warning",
                stacklevel=3,
            )
    else:
        chosen = setting != "1"
        failures = []
        for path in [setting] if chosen else _candidates():
            if not os.path.exists(path):
                failures += [f"MLX_EMBED_OPENBLAS={path} does not exist"] if chosen else []
                continue
            try:
                with _core_type():
                    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError as err:
                failures.append(f"could not load {path}: {err}")
                continue
            loaded, reason, core = path, "loaded", _corename(lib)
            return loaded
        reason = "; ".join(failures) or "no OpenBLAS found (apt-get install libopenblas0-pthread)"
        if chosen:
            warnings.warn(f"mlx_embed: {reason}; MLX's CPU matmuls use its bundled reference BLAS (about 30x slower)", stacklevel=3)
    return None


def _corename(lib: ctypes.CDLL) -> str | None:
    try:
        get = lib.openblas_get_corename
    except AttributeError:
        return None
    get.restype = ctypes.c_char_p
    return get().decode(errors="replace")


def _functions():
    if loaded is None:
        return None
    lib = ctypes.CDLL(loaded)
    try:
        return lib.openblas_get_num_threads, lib.openblas_set_num_threads
    except AttributeError:
        return None


_lock = threading.Lock()
_holders = 0
_saved = 0


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Inside the block OpenBLAS uses ``n`` threads (process-wide); no-op for ``None`` or without OpenBLAS.

    ``Embedder.encode`` runs batches on ``CPU_STREAMS`` MLX streams (two by default), each its own thread,
    and gives OpenBLAS ``cores // streams`` threads, so that together they fill the cores once.
    """
    global _holders, _saved
    funcs = _functions() if n is not None else None
    if funcs is None:
        yield
        return
    get, set_ = funcs
    with _lock:  # overlapping calls (threads) restore the count the first one found, when the last leaves
        if _holders == 0:
            _saved = get()
        _holders += 1
        set_(n)
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                set_(_saved)
