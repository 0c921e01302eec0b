"""What a model costs on this machine: import and load time, memory (RSS, swap, MLX), throughput, latency.

    mlx-embed profile --model minilm [--model ./minilm-4bit] [--texts FILE] [--json]
    python -m mlx_embed.profile --model minilm

Each model is measured in a fresh Python process (import time, cold load and "RSS before load" are
only meaningful there, and several models in one run must not pollute each other); the parent
collects one JSON object per model. RSS is sampled every 5 ms by a background thread, so a peak
between two batches is not missed.

JSON (``--json``), keys stable; sizes in bytes, times in seconds unless the key says ``_ms``::

    {
      "schema": "mlx_embed.profile/1",
      "machine": {"os", "arch", "chip", "ram_bytes", "cpu_count", "host_cpu_count", "python", "memory_metric"},
      "backend": {"name": "metal" | "cpu" | "cuda", "device_name", "mlx_version", "blas"},
      "workload": {"name", "texts", "batch_size", "queries"},
      "models": [{
        "model", "alias", "architecture", "path", "source", "dim", "max_length",
        "parameters", "weights_bytes", "bits_per_weight", "resident_weight_bytes",
        "import_s", "load_cold_s", "load_warm_s",
        "rss_bytes": {"before_import", "before_load", "after_load", "load_delta", "peak_load",
                      "peak_encode", "after_encode"},
        "swap_bytes": {"total", "used_before", "used_after", "delta"},
        "mlx_bytes": {"active_after_load", "peak_load", "active_after_encode", "peak_encode", "cache_after_encode"},
        "throughput": {"texts", "tokens", "seconds", "warmup_s", "texts_per_s", "tokens_per_s",
                       "max_batch_tokens", "batches", "largest_batch", "streams"},
        "latency_ms": {"queries", "p50", "p95", "mean", "max"}
      }],
      "failed": [{"model", "error"}]
    }

``failed`` is there only when a model could not be measured (a damaged folder, a crash, the OOM killer,
``--timeout``): the others are still reported, and the command exits with status 1 (``models`` is empty when
none could be measured; ``machine`` and ``backend`` are then the parent process's). Every name is
looked up before any model is measured, so a mistyped one fails at once.

``PROFILE_SCHEMA`` is the same as a JSON Schema. The ``rss_bytes`` figures are what
``machine.memory_metric`` names: RSS on Linux, the physical footprint on macOS, where RSS misses Metal
buffers (:mod:`mlx_embed.procmem`). ``rss_bytes.before_import`` is a bare interpreter
plus psutil; ``load_delta`` is ``after_load - before_load``. ``resident_weight_bytes`` is what the
loaded parameters occupy (on the CPU backend quantized Linear weights are dequantized to float32 at
load, so it exceeds ``weights_bytes``; on Metal they are equal up to the dropped pooler).
``load_cold_s`` is the process's first load: it includes the imports a load does on first use
(``huggingface_hub`` for an alias or Hub id, about 0.6 s here), but not a cold disk: the weight files may
well be in the OS page cache already (from a previous run or download); ``load_warm_s`` is a second
load in the same process. Both also evaluate lazily cast parameters, so "after load" is the memory of a
used model.
Swap is system-wide (other processes move it too); 0 where the machine has no swap.
``tokens`` counts real (unpadded) tokens after truncation. ``parameters`` counts what the checkpoint
stores, quantized matrices unpacked: a BERT file's pooler counts although mlx_embed never loads it, so the
packaged fp32 MiniLM has 22.71 M and its ``mlx-embed convert`` copy, which drops the pooler, 22.57 M.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import psutil

from . import procmem
from .procmem import process_memory

SCHEMA_ID = "mlx_embed.profile/1"
DEFAULT_REPEAT = 10  # the built-in sample (24 texts) repeated: 240 texts
MIN_QUERIES = 20
MAX_TIMEOUT_S = 1e6  # 11 days; subprocess cannot wait for inf or 1e10 s
SAMPLE_INTERVAL_S = 0.005


def _int_fields(*names: str) -> dict:
    return {
        "type": "object",
        "required": list(names),
        "additionalProperties": False,
        "properties": {n: {"type": "integer", "minimum": 0} for n in names},
    }


_STR = {"type": "string"}
_MACHINE = {
    "type": "object",
    "required": ["os", "arch", "chip", "ram_bytes", "cpu_count", "python", "memory_metric"],
    "additionalProperties": False,
    "properties": {
        "os": _STR, "arch": _STR, "chip": _STR, "python": _STR, "memory_metric": {"enum": ["rss", "phys_footprint"]},
        "ram_bytes": {"type": "integer", "minimum": 1}, "cpu_count": {"type": "integer", "minimum": 1},
        "host_cpu_count": {"type": "integer", "minimum": 1},
    },
}
_BACKEND = {
    "type": "object",
    "required": ["name", "device_name", "mlx_version", "blas"],
    "additionalProperties": False,
    "properties": {"name": {"enum": ["metal", "cpu", "cuda"]}, "device_name": _STR, "mlx_version": _STR, "blas": _STR},
}
_MODEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model": _STR, "alias": _STR, "architecture": _STR, "path": _STR, "source": _STR,
        "dim": {"type": "integer", "minimum": 1}, "max_length": {"type": "integer", "minimum": 1},
        "parameters": {"type": "integer", "minimum": 1}, "weights_bytes": {"type": "integer", "minimum": 1},
        "bits_per_weight": {"type": "number", "minimum": 0}, "resident_weight_bytes": {"type": "integer", "minimum": 1},
        "import_s": {"type": "number", "minimum": 0}, "load_cold_s": {"type": "number", "minimum": 0},
        "load_warm_s": {"type": "number", "minimum": 0},
        "rss_bytes": {
            "type": "object",
            "required": ["before_import", "before_load", "after_load", "load_delta", "peak_load", "peak_encode", "after_encode"],
            "additionalProperties": False,
            "properties": {
                **{n: {"type": "integer", "minimum": 0}
                   for n in ("before_import", "before_load", "after_load", "peak_load", "peak_encode", "after_encode")},
                "load_delta": {"type": "integer"},
            },
        },
        "swap_bytes": {
            "type": "object",
            "required": ["total", "used_before", "used_after", "delta"],
            "additionalProperties": False,
            "properties": {
                "total": {"type": "integer", "minimum": 0}, "used_before": {"type": "integer", "minimum": 0},
                "used_after": {"type": "integer", "minimum": 0}, "delta": {"type": "integer"},
            },
        },
        "mlx_bytes": _int_fields("active_after_load", "peak_load", "active_after_encode", "peak_encode", "cache_after_encode"),
        "throughput": {
            "type": "object",
            "required": ["texts", "tokens", "seconds", "warmup_s", "texts_per_s", "tokens_per_s", "max_batch_tokens",
                         "batches", "largest_batch", "streams"],
            "additionalProperties": False,
            "properties": {
                "texts": {"type": "integer", "minimum": 1}, "tokens": {"type": "integer", "minimum": 1},
                **{n: {"type": "integer", "minimum": 1} for n in ("max_batch_tokens", "batches", "largest_batch", "streams")},
                **{n: {"type": "number", "minimum": 0} for n in ("seconds", "warmup_s", "texts_per_s", "tokens_per_s")},
            },
        },
        "latency_ms": {
            "type": "object",
            "required": ["queries", "p50", "p95", "mean", "max"],
            "additionalProperties": False,
            "properties": {
                "queries": {"type": "integer", "minimum": MIN_QUERIES},
                **{n: {"type": "number", "minimum": 0} for n in ("p50", "p95", "mean", "max")},
            },
        },
    },
}
_MODEL["required"] = list(_MODEL["properties"])

PROFILE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mlx-embed profile report",
    "type": "object",
    "required": ["schema", "machine", "backend", "workload", "models"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "machine": _MACHINE,
        "backend": _BACKEND,
        "workload": {
            "type": "object",
            "required": ["name", "texts", "batch_size", "queries"],
            "additionalProperties": False,
            "properties": {
                "name": _STR, "texts": {"type": "integer", "minimum": 1},
                "batch_size": {"type": "integer", "minimum": 1}, "queries": {"type": "integer", "minimum": MIN_QUERIES},
            },
        },
        "models": {"type": "array", "items": _MODEL},
        "failed": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object", "required": ["model", "error"], "additionalProperties": False,
                "properties": {"model": _STR, "error": _STR},
            },
        },
    },
}


def _reset_kernel_peak() -> bool:
    """Reset Linux's per-process RSS high-water mark (VmHWM) to the current RSS; False elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakSampler:
    """Samples this process's memory (:func:`rss`) on a background thread; ``peak`` is the largest value seen.

    Use as a context manager around the work; the RSS at entry and exit also count. On Linux the
    kernel's own high-water mark (VmHWM, reset on entry) is folded in, so even a peak shorter than
    the sampling interval counts. ``record=S`` keeps ``(seconds since start, rss)`` pairs in
    ``samples``, at most one per ``S`` seconds (so a long run's record does not itself grow the RSS).
    """

    def __init__(self, interval: float = SAMPLE_INTERVAL_S, record: float | None = None):
        self.interval = interval
        self.record = record
        self._last_record = float("-inf")
        self.samples: list[tuple[float, int]] = []
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0
        self._hwm = False

    def _sample(self) -> None:
        rss = process_memory()
        if rss > self.peak:
            self.peak = rss
        if self.record is not None:
            now = time.perf_counter() - self._start
            if now - self._last_record >= self.record:
                self.samples.append((now, rss))
                self._last_record = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakSampler":
        self._start = time.perf_counter()
        self._hwm = _reset_kernel_peak()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()
        if self._hwm:
            self.peak = max(self.peak, procmem.peak_memory())  # VmHWM, reset on entry


def rss() -> int:
    """This process's memory as the OS charges it: RSS on Linux, the physical footprint on macOS
    (:mod:`mlx_embed.procmem`; every "RSS" figure of a report is this, named by ``memory_metric``)."""
    return process_memory()


def swap_used() -> int:
    return int(psutil.swap_memory().used)


def _chip() -> str:
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """``cpu_count`` is the CPUs this process may run on (its affinity: a container's cpuset, ``taskset``),
    which decide the CPU streams and BLAS threads; ``host_cpu_count`` the machine's."""
    from .embedder import usable_cpus

    return {
        "os": platform.platform(),
        "arch": platform.machine(),
        "chip": _chip(),
        "ram_bytes": int(psutil.virtual_memory().total),
        "cpu_count": usable_cpus(),
        "host_cpu_count": os.cpu_count() or usable_cpus(),
        "python": platform.python_version(),
        "memory_metric": procmem.METRIC,
    }


def backend_name() -> str:
    """MLX's default device as a backend name: "metal", "cuda" or "cpu"."""
    import mlx.core as mx

    if mx.default_device() == mx.gpu:
        return "metal" if mx.metal.is_available() else "cuda"
    return "cpu"


def child_env() -> dict[str, str]:
    """This environment with the folder that holds this mlx_embed first on PYTHONPATH, so a child
    interpreter imports the same copy."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def resident_bytes(model) -> int:
    """Bytes of a model's parameters in memory (packed weights as packed)."""
    from mlx.utils import tree_flatten

    return int(sum(v.nbytes for _, v in tree_flatten(model.parameters())))


def backend_info() -> dict:
    """MLX's default device as a backend name ("metal", "cuda", "cpu"), its name, MLX version, BLAS."""
    import mlx.core as mx

    from . import _blas

    name = backend_name()
    try:
        info = mx.device_info()
        device_name = str(info.get("device_name") or info.get("architecture") or name)
    except Exception:  # noqa: BLE001 - older MLX has no device_info; the name is informational
        device_name = name
    if sys.platform == "darwin":  # MLX's macOS builds run CPU matmuls on Accelerate, Metal or not
        blas = "Accelerate"
    elif _blas.loaded:
        blas = f"OpenBLAS ({_blas.loaded}, {_blas.core or 'kernels unknown'})"
    else:
        blas = f"bundled ({_blas.reason})"
    return {"name": name, "device_name": device_name, "mlx_version": mx.__version__, "blas": blas}


def builtin_workload(repeat: int = DEFAULT_REPEAT) -> list[str]:
    from .samples import SAMPLE_TEXTS

    return list(SAMPLE_TEXTS) * repeat


def read_texts(path: str | os.PathLike) -> list[str]:
    """The non-empty lines of a UTF-8 file, one text per line (as ``embed --input`` reads them)."""
    from .textfile import read_lines

    texts = [t for t in read_lines(os.fspath(path), "--texts") if t.strip()]
    if not texts:
        raise ValueError(f"--texts {path} has no non-empty lines: give one text per line")
    return texts


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def _measure(
    model: str,
    texts: list[str],
    *,
    batch_size: int,
    queries: int,
    import_s: float,
    rss_before_import: int,
) -> dict:
    """The per-model measurements; runs in a fresh process right after ``import mlx_embed``."""
    import mlx.core as mx

    import mlx_embed
    from mlx_embed.embedder import chunk_spans, default_batch_tokens
    from mlx_embed.stats import checkpoint_stats

    swap_total = int(psutil.swap_memory().total)
    swap_before = swap_used()
    gc.collect()
    rss_before_load = rss()

    with PeakSampler() as load_sampler:
        start = time.perf_counter()
        embedder = mlx_embed.load(model)
        mx.eval(embedder.model.parameters())
        load_cold_s = time.perf_counter() - start
    rss_after_load = rss()
    mlx_active_load = int(mx.get_active_memory())
    mlx_peak_load = int(mx.get_peak_memory())
    resident = resident_bytes(embedder.model)
    stats = checkpoint_stats(embedder.path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompt = embedder.spec.default_prompt or ""  # what encode() puts before each text
        items = [prompt + t for t in texts]
        lengths = [len(s) for s in embedder.text_encoder.encode(items, embedder.max_length)]
    tokens = sum(lengths)
    # encode's own batches, per chunk it tokenizes: on CPU its cap on padded tokens usually binds before batch_size
    cap = default_batch_tokens()
    plans = [embedder._plan(lengths[a:b], batch_size, cap) for a, b in chunk_spans(items, embedder.max_length)]
    batch_texts = [len(b) for plan, _ in plans for b in plan]
    streams = max(len(s) for _, s in plans)
    query_texts = [texts[i % len(texts)] for i in range(queries)]

    with PeakSampler() as encode_sampler:
        start = time.perf_counter()
        embedder.encode(texts[:batch_size], batch_size=batch_size)
        warmup_s = time.perf_counter() - start
        mx.reset_peak_memory()
        start = time.perf_counter()
        embedder.encode(texts, batch_size=batch_size)
        encode_s = time.perf_counter() - start
        latencies = []
        for q in query_texts:
            start = time.perf_counter()
            embedder.encode_query(q)
            latencies.append((time.perf_counter() - start) * 1000)
    rss_after_encode = rss()
    mlx_bytes = {
        "active_after_load": mlx_active_load,
        "peak_load": mlx_peak_load,
        "active_after_encode": int(mx.get_active_memory()),
        "peak_encode": int(mx.get_peak_memory()),
        "cache_after_encode": int(mx.get_cache_memory()),
    }
    swap_after = swap_used()

    start = time.perf_counter()
    second = mlx_embed.load(model)
    mx.eval(second.model.parameters())
    load_warm_s = time.perf_counter() - start
    del second

    spec = embedder.spec
    return {
        "model": model,
        "alias": spec.alias,
        "architecture": spec.architecture,
        "path": str(embedder.path),
        "source": embedder.source,
        "dim": embedder.dim,
        "max_length": embedder.max_length,
        "parameters": stats.parameters,
        "weights_bytes": stats.weights_bytes,
        "bits_per_weight": round(stats.bits_per_weight, 4),
        "resident_weight_bytes": int(resident),
        "import_s": import_s,
        "load_cold_s": load_cold_s,
        "load_warm_s": load_warm_s,
        "rss_bytes": {
            "before_import": rss_before_import,
            "before_load": rss_before_load,
            "after_load": rss_after_load,
            "load_delta": rss_after_load - rss_before_load,
            "peak_load": max(load_sampler.peak, rss_after_load),
            "peak_encode": max(encode_sampler.peak, rss_after_encode),
            "after_encode": rss_after_encode,
        },
        "swap_bytes": {
            "total": swap_total,
            "used_before": swap_before,
            "used_after": swap_after,
            "delta": swap_after - swap_before,
        },
        "mlx_bytes": mlx_bytes,
        "throughput": {
            "texts": len(texts),
            "tokens": int(tokens),
            "seconds": encode_s,
            "warmup_s": warmup_s,
            "texts_per_s": len(texts) / encode_s,
            "tokens_per_s": tokens / encode_s,
            "max_batch_tokens": cap,
            "batches": len(batch_texts),
            "largest_batch": max(batch_texts),
            "streams": max(1, streams),
        },
        "latency_ms": latency_summary(latencies),
    }


def latency_summary(latencies_ms: list[float]) -> dict:
    """``queries``, ``p50``, ``p95`` (linear interpolation between the nearest ranks, numpy's default),
    ``mean`` and ``max`` of single-query latencies."""
    return {
        "queries": len(latencies_ms),
        "p50": _percentile(latencies_ms, 50),
        "p95": _percentile(latencies_ms, 95),
        "mean": sum(latencies_ms) / len(latencies_ms),
        "max": max(latencies_ms),
    }


# Run in a fresh interpreter: procmem first, loaded by path (for "RSS before import"), then time
# `import mlx_embed`.
_BOOTSTRAP = """\
import sys, time, importlib.util
_spec = importlib.util.spec_from_file_location("_procmem", sys.argv[1])
_procmem = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_procmem)
_rss0 = _procmem.process_memory()
_t0 = time.perf_counter()
import mlx_embed
_t1 = time.perf_counter()
import importlib
importlib.import_module(sys.argv[2])._child_main(sys.argv[3:], import_s=_t1 - _t0, rss_before_import=_rss0)
"""


class ChildFailed(RuntimeError):
    """The measuring child process died or failed; ``reason`` says how, in one line; ``timed_out``: it was
    stopped for running past its time."""

    def __init__(self, reason: str, tail: str = "", timed_out: bool = False):
        super().__init__(f"measuring in a child process failed: {reason}" + (f"\n{tail}" if tail else ""))
        self.reason = reason
        self.tail = tail
        self.timed_out = timed_out


def exit_reason(returncode: int) -> str:
    """A child's exit status in words; a negative one is the signal that ended it."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"killed by signal {-returncode}"
    if name == "SIGKILL":
        return "killed by SIGKILL: out of memory (Linux's OOM killer, macOS's jetsam), unless a person or a timeout killed it"
    if name == "SIGSEGV":
        return "killed by SIGSEGV, a crash (MLX crashes this way when an allocation fails, e.g. under ulimit -v)"
    return f"killed by {name}"


def run_child(module: str, args: list[str], timeout: float | None = None) -> dict:
    """Run ``module._child_main(args)`` in a fresh interpreter and return the JSON it writes to ``--out``.

    Raises :class:`ChildFailed` when the child dies (a signal such as the OOM killer's or jetsam's), exits non-zero
    or runs past ``timeout`` seconds (then it is killed), ``ValueError`` for the bad input the child reports."""
    env = child_env()
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="mlx_embed_child_") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _BOOTSTRAP, procmem.__file__, module, *args, "--out", str(out)],
                capture_output=True, text=True, env=env, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise ChildFailed(f"stopped after {timeout:g} s without finishing (hung, swapping, or slower than that)",
                              timed_out=True) from None
        if proc.returncode != 0 or not out.exists():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            reason = exit_reason(proc.returncode) if proc.returncode != 0 else "exited without writing its result"
            if proc.returncode > 0 and lines:
                reason += f": {lines[-1].strip()}"
            raise ChildFailed(reason, "\n".join(lines[-15:]))
        result = json.loads(out.read_text())
    if "error" in result:
        raise ChildError(result["error"], result)
    return result


class ChildError(ValueError):
    """The bad input a measuring child reports; ``details``: all it wrote (``stage`` says where it stopped)."""

    def __init__(self, message: str, details: dict) -> None:
        super().__init__(message)
        self.details = details


def _child_main(argv: list[str], *, import_s: float, rss_before_import: int) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--queries", type=int, default=MIN_QUERIES)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        texts = read_texts(args.texts) if args.texts else builtin_workload(args.repeat)
        result = {
            "machine": machine_info(),
            "backend": backend_info(),
            "model": _measure(
                args.model, texts, batch_size=args.batch_size, queries=args.queries,
                import_s=import_s, rss_before_import=rss_before_import,
            ),
        }
    except (ValueError, TypeError, FileNotFoundError) as err:  # bad input: reported by the parent
        result = {"error": str(err)}
    Path(args.out).write_text(json.dumps(result))


def profile(
    models: list[str],
    *,
    texts: str | os.PathLike | None = None,
    repeat: int = DEFAULT_REPEAT,
    batch_size: int = 32,
    queries: int = MIN_QUERIES,
    timeout: float | None = None,
) -> dict:
    """Profile each model in its own fresh process; returns the report described in the module docstring.

    ``texts``: a file with one text per line (default: the built-in EN/RU/ZH/code sample, ``repeat`` times).
    A model that cannot be measured is listed under ``failed``; :class:`NothingMeasured` when none could be.
    """
    from .loading import resolve_all  # imports MLX, which the parent needs only to find the models

    if not models:
        raise ValueError("give at least one model (--model NAME_OR_FOLDER)")
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < MIN_QUERIES:
        raise ValueError(f"queries must be an int >= {MIN_QUERIES} (percentiles of fewer are noise), got {queries!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout <= MAX_TIMEOUT_S):
        raise ValueError(f"timeout must be a number of seconds > 0 and <= {MAX_TIMEOUT_S:g}, got {timeout!r}")
    lines = read_texts(texts) if texts is not None else None
    resolve_all(models)
    rows, failed, machine, backend = [], [], None, None
    with tempfile.TemporaryDirectory(prefix="mlx_embed_texts_") as tmp:
        if lines is not None:  # the children read a copy: a pipe or process substitution can be read only once
            copy = Path(tmp) / "texts.txt"
            copy.write_text("".join(line + "\r\n" for line in lines), encoding="utf-8", newline="")  # a text's own final \r stays
            n_texts, name, extra = len(lines), str(texts), ["--texts", str(copy)]
        else:
            n_texts, name = len(builtin_workload(repeat)), f"builtin mixed EN/RU/ZH/code sample x{repeat}"
            extra = ["--repeat", str(repeat)]
        workload = {"name": name, "texts": n_texts, "batch_size": batch_size, "queries": queries}
        for model in models:
            try:
                got = run_child(
                    "mlx_embed.profile",
                    ["--model", str(model), "--batch-size", str(batch_size), "--queries", str(queries), *extra],
                    timeout=timeout,
                )
            except (ChildFailed, ValueError) as err:
                failed.append({"model": str(model), "error": getattr(err, "reason", str(err)) + _timeout_hint(err)})
                if len(models) == 1:  # a model that cannot be measured: status 1 (README), as one of several
                    raise NothingMeasured(f"{err}{_timeout_hint(err)}", failed, workload) from None
                continue
            machine, backend = got["machine"], got["backend"]
            rows.append(got["model"])
    if not rows:
        raise NothingMeasured("every model failed: " + "; ".join(f"{f['model']}: {f['error']}" for f in failed), failed, workload)
    report = {"schema": SCHEMA_ID, "machine": machine, "backend": backend, "workload": workload, "models": rows}
    if failed:
        report["failed"] = failed
    return report


class NothingMeasured(RuntimeError):
    """:func:`profile` measured no model; ``failed`` and ``workload`` are what its report would hold."""

    def __init__(self, message: str, failed: list[dict], workload: dict):
        super().__init__(message)
        self.failed, self.workload = failed, workload


MIN_TIMED_S = 1.0  # a shorter timed pass gets a note that its throughput is noise


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f}"


def _cpu_text(machine: dict) -> str:
    host = machine.get("host_cpu_count", machine["cpu_count"])  # absent in reports written before it was added
    n = machine["cpu_count"]
    return f"{n} CPU{'s' * (n != 1)}" + (f" (of {host} on the host)" if host != n else "")


def format_report(report: dict) -> str:
    """A human-readable table: one row per model, preceded by the machine and backend."""
    m, b, w = report["machine"], report["backend"], report["workload"]
    lines = [
        f"machine: {m['chip']}, {m['ram_bytes'] / 2**30:.1f} GiB RAM, {_cpu_text(m)}, {m['os']}",
        f"backend: {b['name']} ({b['device_name']}), MLX {b['mlx_version']}, BLAS {b['blas']}",
        f"workload: {w['name']}: {w['texts']} texts, batch {w['batch_size']}; latency over {w['queries']} single queries",
    ]
    caps = sorted({r["throughput"]["max_batch_tokens"] for r in report["models"]})
    streams = max((r["throughput"]["streams"] for r in report["models"]), default=1)
    if caps:  # on CPU this cap, not batch_size, usually decides how many texts run at once
        shared = f", shared by {streams} batches that run at once on CPU streams" if streams > 1 else ""
        lines.append(f"encode also caps a batch at {'/'.join(map(str, caps))} padded tokens (max_batch_tokens){shared}: "
                     "see 'batches (most texts)'")
    short = [r["model"] for r in report["models"] if r["throughput"]["seconds"] < MIN_TIMED_S]
    if short:
        lines.append(f"note: the timed pass took under {MIN_TIMED_S:g} s for {', '.join(short)}: texts/s and tokens/s "
                     f"are noisy there; give more texts ({'--repeat, --texts' if w['name'].startswith('builtin') else 'a longer --texts file'})")
    lines.append("")
    cols = [
        "model", "params", "bits/w", "weights MiB", "import s", "load s cold/warm", "RSS before/after load MiB",
        "load Δ MiB", "peak encode MiB", "swap Δ MiB", "MLX active/peak/cache MiB", "batches (most texts)", "texts/s",
        "tokens/s", "p50/p95 ms",
    ]
    body = []
    for r in report["models"]:
        rs, mx_, t, lat = r["rss_bytes"], r["mlx_bytes"], r["throughput"], r["latency_ms"]
        body.append([
            r["model"], f"{r['parameters'] / 1e6:.1f}M", f"{r['bits_per_weight']:.2f}", _mb(r["weights_bytes"]),
            f"{r['import_s']:.2f}", f"{r['load_cold_s']:.2f}/{r['load_warm_s']:.2f}",
            f"{_mb(rs['before_load'])}/{_mb(rs['after_load'])}", _mb(rs["load_delta"]), _mb(rs["peak_encode"]),
            _mb(r["swap_bytes"]["delta"]),
            f"{_mb(mx_['active_after_encode'])}/{_mb(mx_['peak_encode'])}/{_mb(mx_['cache_after_encode'])}",
            f"{t['batches']} ({t['largest_batch']})", f"{t['texts_per_s']:.1f}", f"{t['tokens_per_s']:.0f}",
            f"{lat['p50']:.1f}/{lat['p95']:.1f}",
        ])
    widths = [max(len(x) for x in col) for col in zip(cols, *body)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(cols, widths)))
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import at_least

    parser.add_argument("--model", action="append", required=True, metavar="M",
                        help="alias, Hub id or folder; repeat for several models in one table")
    parser.add_argument("--texts", help="a UTF-8 file with one text per line (default: built-in mixed sample)")
    parser.add_argument("--repeat", type=at_least(1), help="copies of the built-in sample (default 10: 240 texts; not with --texts)")
    parser.add_argument("--batch-size", type=at_least(1), default=32, help="encode's batch_size (default 32)")
    parser.add_argument("--queries", type=at_least(MIN_QUERIES), default=MIN_QUERIES, help=f"single queries for latency (>= {MIN_QUERIES})")
    parser.add_argument("--timeout", type=at_least(0, float), metavar="S",
                        help="stop measuring a model after S seconds and report it as failed (default: no limit)")
    parser.add_argument("--json", action="store_true", help="print the JSON report (schema in mlx_embed.profile)")


def _timeout_hint(err: Exception) -> str:
    return "; pass a larger --timeout" if getattr(err, "timed_out", False) else ""


def run(args: argparse.Namespace) -> int:
    if args.texts and args.repeat is not None:
        raise ValueError("--repeat copies the built-in sample, so it does nothing with --texts: drop one of them")
    try:
        report = profile(
            args.model, texts=args.texts, repeat=args.repeat or DEFAULT_REPEAT, batch_size=args.batch_size, queries=args.queries,
            timeout=args.timeout,
        )
    except RuntimeError as err:
        if args.json and isinstance(err, NothingMeasured):  # still the report a script reads, with no model in it
            print(json.dumps({"schema": SCHEMA_ID, "machine": machine_info(), "backend": backend_info(),
                              "workload": err.workload, "models": [], "failed": err.failed}, indent=2))
        print(f"mlx-embed profile: {err}{_timeout_hint(err)}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if "failed" in report:
        for f in report["failed"]:
            print(f"mlx-embed profile: {f['model']} failed: {f['error']}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlx_embed.profile", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"mlx-embed profile: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
