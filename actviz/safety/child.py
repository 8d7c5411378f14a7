"""The child's side of checking an untrusted model file: what runs in
``python -m actviz.safety.child TASK FOLDER``, started by ``isolation`` (the parent's side).

The child reads ``job.json`` in ``FOLDER`` (written by the parent: the file's path and kind, its
limits, and for "vet" the configuration the parent checked), sets its own limits first thing,
runs one task and writes ``result.json``:

- ``scan``: the structure scan (``scan.read_model_file``; zipfile, h5py and json, no
  TensorFlow). Returns the ``FileScan``.
- ``vet``: from the scan the parent checked (the structure is not read again), the dry build
  and the loading memory, the load with Keras in safe mode (``building.load_scanned``), the
  layer table (``Probe``), the memory of a forward pass at the real input size
  (``Probe.check_budget``) and one forward pass on a zero image. Returns the figures of the
  ``VetReport``.

It decides nothing about what is allowed: that is the parent's (``policy``). A refusal
(``ActvizError``) is written with its class name and words; running out of memory ends
the process with ``EXIT_MEMORY``.

Limits (``resource.setrlimit``; no ``preexec_fn`` in the parent, which is unsafe in a
multi-threaded server such as Streamlit):

- memory: ``RLIMIT_DATA`` (private writable memory: the heap, NumPy and TensorFlow
  buffers). Not ``RLIMIT_AS``: TensorFlow maps about 1.8 GB of address space for its
  libraries and thread stacks before doing anything, most of it never resident, so an
  address-space limit large enough for TensorFlow would hardly limit anything. Measured
  with TF 2.21: importing Keras and running a small model takes VmData 0.52 GB; a NumPy
  allocation over the data limit fails with MemoryError.
- processor time ``RLIMIT_CPU`` (SIGXCPU), no core files, written files at most the
  largest model, and the child is the first the kernel's out-of-memory killer picks
  (``oom_score_adj`` 1000).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback

#: Exit status of a child that ran out of memory and said so.
EXIT_MEMORY = 3


def main(argv: list[str] | None = None) -> int:
    """``python -m actviz.safety.child TASK FOLDER``: limits first, then the task, then result.json."""
    task, folder = (argv if argv is not None else sys.argv[1:])[:2]
    with open(os.path.join(folder, "job.json")) as handle:
        job = json.load(handle)
    _set_limits(*job["limits"])
    from ..errors import ActvizError

    try:
        result: dict = {"ok": True, "value": _TASKS[task](job)}
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except ActvizError as exc:
        result = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except RecursionError:
        result = {"ok": False, "error": "UnsafeModelError", "message": "The model file is nested too deeply to be read safely; refused."}
    except Exception as exc:  # noqa: BLE001 -- reported to the parent, which logs the traceback
        if "ResourceExhausted" in type(exc).__name__ or "out of memory" in str(exc).lower() or _near_memory_limit():
            os._exit(EXIT_MEMORY)
        result = {"ok": False, "error": "bug", "message": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
                  "traceback": traceback.format_exc()[-4000:]}
    _write_result(folder, result)
    return 0


def _set_limits(memory_mb: float, cpu_seconds: float) -> None:
    """Limit this process: data memory, processor time, no core dumps, files at most a model's size."""
    import resource

    from .scan import MAX_MODEL_BYTES

    def limit(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        hard_value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (min(value, hard_value), hard_value))

    limit(resource.RLIMIT_DATA, int(memory_mb * 1024**2))
    cpu = max(1, int(cpu_seconds + 0.999))
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5 if hard == resource.RLIM_INFINITY else min(cpu + 5, hard)))
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_FSIZE, MAX_MODEL_BYTES + 256 * 1024**2)
    with contextlib.suppress(OSError):  # be the first the out-of-memory killer picks, not the server
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")


def _scan(job: dict) -> dict:
    from .scan import read_model_file

    return read_model_file(job["path"], kind=job["kind"]).to_json()


def _vet(job: dict) -> dict:
    from .scan import FileScan

    scanned = FileScan.from_json(job["scanned"])
    _quiet_tensorflow()
    import numpy as np

    from ..core.probe import Probe
    from .building import load_scanned

    started = time.monotonic()
    model, notes, declared = load_scanned(job["path"], scanned)
    load_seconds = time.monotonic() - started
    probe = Probe(model)
    height, width, channels = _checked_size(probe.input_shape)
    names = [info.name for info in probe.default_layers]
    batch_shape = (1, height, width, channels)
    probe.check_budget(batch_shape, names)
    started = time.monotonic()
    probe.run(np.zeros(batch_shape, np.float32), names)
    return {
        "input_shape": list(probe.input_shape), "checked_size": [height, width],
        "layer_count": len(probe.table.rows), "spatial_layer_count": len(probe.spatial_layers),
        "declared_weight_bytes": declared, "forward_bytes": probe.forward_bytes(batch_shape, names),
        "load_seconds": load_seconds, "forward_seconds": time.monotonic() - started,
        "peak_memory_mb": _peak_memory_mb(), "notes": notes,
    }


_TASKS = {"scan": _scan, "vet": _vet}


def _checked_size(input_shape: tuple) -> tuple[int, int, int]:
    """The (H, W, C) a vetting pass runs at: the model's own, or for any size the largest actviz feeds it."""
    from ..inputs.images import MAX_DYNAMIC_SIDE

    height, width, channels = input_shape
    return int(height or MAX_DYNAMIC_SIDE), int(width or MAX_DYNAMIC_SIDE), int(channels or 3)


def _quiet_tensorflow() -> None:
    """Import Keras (TensorFlow) with at most two threads for operations: a check must not take the machine."""
    import tensorflow as tf

    with contextlib.suppress(RuntimeError, ValueError):
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras  # noqa: F401


def _peak_memory_mb() -> float:
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return 0.0


def _near_memory_limit(share: float = 0.8) -> bool:
    """True when this process's private memory is within reach of its limit: C code that cannot
    allocate (TensorFlow's import, h5py) often fails with some other error than MemoryError
    (e.g. "SystemError: error return without exception set"), and that is a memory refusal too."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if soft == resource.RLIM_INFINITY:
        return False
    try:
        with open("/proc/self/status") as handle:
            data_kb = next(int(line.split()[1]) for line in handle if line.startswith("VmData:"))
    except (OSError, StopIteration, ValueError):
        return False
    return data_kb * 1024 >= share * soft


def _write_result(folder: str, result: dict) -> None:
    temporary = os.path.join(folder, "result.json.part")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(result, handle, ensure_ascii=False)
    except MemoryError:
        os._exit(EXIT_MEMORY)
    os.replace(temporary, os.path.join(folder, "result.json"))


if __name__ == "__main__":
    sys.exit(main())
