"""Exit safety for threads that ran MLX compiled functions.

MLX (0.32) keeps a compile cache per thread, and a thread's cache holds Python objects that its
destructor frees under the GIL. That destructor runs as the OS thread ends, after ``Thread.join``
has returned: if the interpreter is finalizing by then, the process aborts ("terminate called
without an active exception"). The fused CPU kernels and, on Metal, ``nn.gelu`` / ``nn.silu`` are
compiled functions, so the threads other than the main one that encode are noted here, and at exit
those that have finished their Python part get time to end: on Linux until ``/proc`` no longer lists
them (at most ``EXIT_WAIT_S``), elsewhere a fixed ``FALLBACK_WAIT_S``. A thread still running at exit
(a daemon) is parked instead: MLX also aborts when a thread is inside it as the process exits, so at
exit an ``encode`` still running in a daemon thread stops at its next batch (or, on the CPU worker
streams, layer) boundary and waits there for the process to end; exit waits at most ``PARK_WAIT_S``
for that. Exit hooks registered before ``mlx_embed``'s run after it, so a thread one of them starts cannot be
waited for: at exit MLX's compilation is turned off (``mx.disable_compile``), and such a thread runs the
same functions uncompiled, leaving no compile cache to free (with it the process aborted 3 times in 3).

Fork: MLX's stream threads do not survive ``fork``, so in a child forked after MLX ran in its parent
(``multiprocessing``'s default start method on Linux before Python 3.14, gunicorn ``--preload``) the first evaluation
waits forever. ``check_fork`` turns that hang into an error naming the fix.

Threads: MLX also gives every thread that runs it a stream of its own, with an OS thread that lives as
long as the process, so a new thread per request leaks one OS thread each; ``note_thread`` warns once
when ``MANY_THREADS`` different threads have encoded.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable

from ._messages import caller_stacklevel

EXIT_WAIT_S = 2.0
FALLBACK_WAIT_S = 0.2
MANY_THREADS = 32  # warn once when this many different threads have encoded
PARK_WAIT_S = 10.0  # at exit, how long encodes still running in daemon threads get to reach a layer's end
_threads_seen = 0
_exiting = False
_in_flight = 0  # encode calls running in daemon threads
_parked = 0  # of those, the ones waiting for the process to end (see park_if_exiting)
_state = threading.Condition()

# native thread id -> its Thread, for the threads other than the main one that ran model code
_noted: dict[int, weakref.ref] = {}
_lock = threading.Lock()

_mlx_used = False  # mlx_embed has run MLX in this process
_forked_after_use = False  # this process was forked from one where it had


def _after_fork_in_child() -> None:
    global _forked_after_use, _exiting, _in_flight, _parked, _state, _lock
    _forked_after_use = _forked_after_use or _mlx_used
    _noted.clear()  # the parent's threads, their encodes and locks, are not in the child
    _exiting, _in_flight, _parked = False, 0, 0
    _state, _lock = threading.Condition(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def note_mlx_use() -> None:
    global _mlx_used
    _mlx_used = True


def check_fork() -> None:
    """Refuse to run MLX in a child forked after MLX ran in its parent: it would hang."""
    if _forked_after_use:
        raise RuntimeError(
            "this process was forked after MLX had run in its parent (os.fork, or multiprocessing's 'fork' start "
            "method, the default on Linux before Python 3.14), and MLX cannot run in such a child: its worker threads do not survive "
            "the fork, so encoding would wait forever. Start workers with "
            "multiprocessing.get_context('spawn') (or 'forkserver'), or load the model only in the workers, never in "
            "the parent"
        )


def _os_thread_alive(native_id: int) -> bool:
    return os.path.exists(f"/proc/self/task/{native_id}")


def note_thread() -> None:
    """Record the calling thread if it is not the main one (cheap after the first call)."""
    global _threads_seen
    native_id, current = threading.get_native_id(), threading.current_thread()
    known = _noted.get(native_id)
    if (known is not None and known() is current) or current is threading.main_thread():
        return
    with _lock:  # a new thread, or one that reuses the id of a thread that has ended
        _threads_seen += 1
        if _threads_seen == MANY_THREADS:
            warnings.warn(
                f"mlx_embed: encode has now run on {MANY_THREADS} different threads. MLX 0.32 keeps an OS thread "
                "(a stream) for every thread that has run it, until the process ends (measured on its CPU backend), "
                "so a new thread per request leaks one each: call encode from a fixed pool of threads "
                "(concurrent.futures.ThreadPoolExecutor)",
                RuntimeWarning,
                stacklevel=caller_stacklevel(),
            )
        if len(_noted) >= 64:  # a thread per request: forget the ones that have ended
            for tid, ref in list(_noted.items()):
                if _done_with_python(ref) and not (sys.platform == "linux" and _os_thread_alive(tid)):
                    del _noted[tid]
        _noted[native_id] = weakref.ref(current)


def _done_with_python(ref: weakref.ref) -> bool:
    thread = ref()
    return thread is None or not thread.is_alive()


def tracked(encode: Callable) -> Callable:
    """Count the calls of ``encode`` running in daemon threads (the ones exit does not join), for
    :func:`_at_exit`."""

    @functools.wraps(encode)
    def wrapper(*args, **kwargs):
        global _in_flight
        if not threading.current_thread().daemon:
            return encode(*args, **kwargs)
        with _state:
            _in_flight += 1
        try:
            return encode(*args, **kwargs)
        finally:
            with _state:
                _in_flight -= 1
                _state.notify_all()

    return wrapper


def park_if_exiting(synchronize: Callable[[], None]) -> None:
    """Between batches (and layers, on the CPU worker streams): once the process is exiting, a daemon
    thread still encoding lets MLX finish what it queued (``synchronize``) and then waits here for the
    process to end, outside MLX. Other threads go on: exit may be joining them."""
    global _parked
    if not _exiting or not threading.current_thread().daemon:
        return
    synchronize()
    with _state:
        _parked += 1
        _state.notify_all()
    while True:
        time.sleep(3600)


@atexit.register
def _at_exit() -> None:
    global _exiting
    mx = sys.modules.get("mlx.core")  # not imported: nothing compiled
    if mx is not None:
        mx.disable_compile()
    with _state:
        _exiting = True
        _state.wait_for(lambda: _in_flight <= _parked, timeout=PARK_WAIT_S)
    wait_for_thread_exits()


def wait_for_thread_exits(sleep=time.sleep, platform: str | None = None) -> None:
    finishing = [tid for tid, ref in list(_noted.items()) if _done_with_python(ref)]
    if not finishing:
        return
    if (platform or sys.platform) != "linux":
        sleep(FALLBACK_WAIT_S)  # no portable way to see an OS thread end; sleeping releases the GIL
        return
    deadline = time.monotonic() + EXIT_WAIT_S
    while time.monotonic() < deadline and any(_os_thread_alive(t) for t in finishing):
        sleep(0.001)  # releases the GIL, which the ending threads' cache destructors take
