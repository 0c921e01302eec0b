"""The process-memory figure behind every "RSS" the profiler and fit report."""

import sys

import numpy as np
import pytest

import mlx_embed  # noqa: F401  (before mlx.core: picks the BLAS)
import mlx.core as mx
from mlx_embed import procmem

MIB = 1 << 20


def test_metric_names_the_os_accounting():
    assert procmem.METRIC == ("phys_footprint" if sys.platform == "darwin" else "rss")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux only)")
def test_linux_figure_is_the_kernel_vmrss():
    got = procmem.process_memory()
    with open("/proc/self/status") as f:
        vmrss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    assert abs(got - vmrss) <= 2 * MIB


@pytest.mark.parametrize("where", ["numpy", "mlx"])
def test_memory_grows_by_what_is_allocated(where):
    """256 MiB written by numpy or by MLX on its default device (Metal on a Mac, where RSS would not
    count the buffer) shows up in the figure."""
    n = 256 * MIB // 4
    before = procmem.process_memory()
    if where == "numpy":
        held = np.ones(n, dtype=np.float32)
    else:
        held = mx.ones((n,), dtype=mx.float32) * 2
        mx.eval(held)
    grown = procmem.process_memory() - before
    assert grown >= 0.9 * 256 * MIB, f"{where}: grew {grown / MIB:.0f} MiB"
    del held


def test_peak_memory_is_the_kernels_high_water_mark():
    import resource

    from mlx_embed import procmem

    before = procmem.peak_memory()
    size = max(0, before - procmem.process_memory()) + 128 * 1024 * 1024  # past the old peak, whatever ran before
    block = np.ones(size // 8)  # written, so resident
    held = procmem.process_memory()
    del block
    peak = procmem.peak_memory()
    slack = 4 * 1024 * 1024  # Linux updates the high-water mark from per-thread counters it syncs lazily
    assert held >= before + 64 * 1024 * 1024 and peak >= held - slack and peak > procmem.process_memory() + 64 * 1024 * 1024
    if procmem.METRIC == "rss":
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        assert abs(peak - maxrss) <= 0.02 * maxrss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux only)")
def test_peak_without_proc_is_in_bytes(monkeypatch):
    """Where /proc cannot be read the peak comes from getrusage, in KiB on Linux: the same figure in bytes."""
    import builtins

    with open("/proc/self/status") as f:
        vmhwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    real_open = builtins.open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise PermissionError(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert abs(procmem.peak_memory() - vmhwm) <= 0.02 * vmhwm


def test_cgroup_memory_limit_reads_the_cgroup_and_its_ancestors(tmp_path):
    """A container's limit may sit on the cgroup or an ancestor (v2: memory.max, "max" for none; v1: the memory
    controller's memory.limit_in_bytes, about 2^63 for none); the smallest set one is the process's."""
    from mlx_embed.procmem import cgroup_memory_limit

    def tree(lines: str, files: dict[str, str]) -> tuple[str, str]:
        proc = tmp_path / f"cgroup{len(list(tmp_path.iterdir()))}"
        proc.write_text(lines)
        root = proc.with_suffix(".root")
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text + "\n")
        return str(proc), str(root)

    v2 = tree("0::/a/b\n", {"a/memory.max": "4294967296", "a/b/memory.max": "max", "memory.max": "max"})
    assert cgroup_memory_limit(*v2) == 4 * 2**30
    v1 = tree("5:cpu:/x\n4:memory:/docker/x\n", {"memory/docker/x/memory.limit_in_bytes": "9223372036854771712",
                                                  "memory/memory.limit_in_bytes": "2147483648"})
    assert cgroup_memory_limit(*v1) == 2 * 2**30
    unlimited = tree("4:memory:/p\n0::/\n", {"memory/p/memory.limit_in_bytes": "9223372036854771712", "memory.max": "max"})
    assert cgroup_memory_limit(*unlimited) is None
    assert cgroup_memory_limit(str(tmp_path / "absent"), str(tmp_path)) is None
