"""Open untrusted model files in a child process with limits, so that a file made to crash,
hang or exhaust the reader takes down only that child.

Two checks, each in a fresh ``python -m actviz.safety.isolation`` process:

- **scan** (``scan_file``; every untrusted load, command line and dashboard): the
  structure scan of ``scan.read_model_file`` (zipfile, h5py, json; no TensorFlow,
  about half a second). A segfault in h5py, an endless HDF5 walk, a RecursionError
  or a memory blow-up ends as one ``ModelCheckError`` with a sentence.
- **vet** (``vet_model`` / ``vet_file``; uploads to the dashboard): the scan (in
  its own child, so that a refusal costs no TensorFlow start-up), the configuration
  checks, then in a second child the scan again, the dry build (declared weights and loading memory),
  the load with Keras in safe mode, the layer table (``Probe``), the memory of a
  forward pass at the real input size (``Probe.check_budget``) and one forward
  pass on a zero image. It returns a ``VetReport``. The model is then loaded
  again in the calling process, from the same private copy of the bytes: every
  step that could crash, hang or take unbounded memory has already run once,
  under limits, on exactly those bytes.

The child sets its own limits first thing (``resource.setrlimit``; no
``preexec_fn``, which is unsafe in a multi-threaded server such as Streamlit):

- memory: ``RLIMIT_DATA`` (private writable memory: the heap, NumPy and
  TensorFlow buffers). Not ``RLIMIT_AS``: TensorFlow maps about 1.8 GB of
  address space for its libraries and thread stacks before doing anything,
  most of it never resident, so an address-space limit large enough for
  TensorFlow would hardly limit anything. Measured with TF 2.21: importing Keras
  and running a small model takes VmData 0.52 GB; a NumPy allocation over the
  data limit fails with MemoryError.
- processor time ``RLIMIT_CPU`` (SIGXCPU), no core files, written files at most
  the largest model, and the child is the first the kernel's out-of-memory
  killer picks (``oom_score_adj`` 1000).
- wall-clock time: the parent kills the child's whole process group when the
  time is up.

The parent owns the private folder the child reads from (created with mode
0700) and removes it in a ``finally``, so a killed child leaves nothing behind.
At most ``ACTVIZ_CHECK_WORKERS`` children run at once; others wait for a slot
up to their own time limit, then get ``ServerBusyError``.

Settings (environment variables; defaults in brackets):

- ``ACTVIZ_SCAN_TIMEOUT`` [60] seconds, ``ACTVIZ_SCAN_MEMORY_MB`` [1024]: the scan child.
- ``ACTVIZ_VET_TIMEOUT`` [180] seconds, ``ACTVIZ_VET_MEMORY_MB`` [3072]: the vetting child
  (TensorFlow alone takes about 600 MB of it).
- ``ACTVIZ_VET_CPU_SECONDS`` [2 x the timeout]: processor time of the vetting child (all threads).
- ``ACTVIZ_CHECK_WORKERS`` [2]: children at once, per server process.
- ``ACTVIZ_MAX_MODEL_MB`` (``building``) and ``ACTVIZ_MAX_FORWARD_MB`` (``probe``) apply inside the child too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import errors
from ..errors import ActvizError, ModelCheckError, ModelFileError, ServerBusyError
from .scan import MAX_MODEL_BYTES, FileScan, file_kind
from ..settings import value

log = logging.getLogger("actviz")

#: The folder holding the ``actviz`` package: the child imports this very copy.
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the actviz package: the child imports it from there
#: Exit status of a child that ran out of memory and said so.
_EXIT_MEMORY = 3
#: Largest answer read back from a child, in bytes (a configuration is at most 32 MB).
_MAX_ANSWER = 160 * 1024**2
_CRASH_SIGNALS = {signal.SIGSEGV: "a segmentation fault", signal.SIGBUS: "a bus error", signal.SIGILL: "an illegal instruction",
                  signal.SIGFPE: "an arithmetic fault", signal.SIGABRT: "an abort"}

_slots_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


@dataclass(frozen=True)
class Limits:
    """What one child may take: wall-clock ``seconds``, ``memory_mb`` of data, ``cpu_seconds`` of processor time."""

    seconds: float
    memory_mb: int
    cpu_seconds: float


def scan_limits() -> Limits:
    """Limits of the scan child (``ACTVIZ_SCAN_TIMEOUT`` [60 s], ``ACTVIZ_SCAN_MEMORY_MB`` [1024])."""
    seconds = value("ACTVIZ_SCAN_TIMEOUT")
    return Limits(seconds=seconds, memory_mb=value("ACTVIZ_SCAN_MEMORY_MB"), cpu_seconds=seconds)


def vet_limits(*, timeout: float | None = None, memory_mb: int | None = None) -> Limits:
    """Limits of the vetting child (``ACTVIZ_VET_TIMEOUT`` [180 s], ``ACTVIZ_VET_MEMORY_MB`` [3072],
    ``ACTVIZ_VET_CPU_SECONDS`` [2 x timeout]); ``timeout`` / ``memory_mb`` override them."""
    seconds = float(timeout) if timeout else value("ACTVIZ_VET_TIMEOUT")
    memory = int(memory_mb) if memory_mb else value("ACTVIZ_VET_MEMORY_MB")
    return Limits(seconds=seconds, memory_mb=memory, cpu_seconds=value("ACTVIZ_VET_CPU_SECONDS") or 2 * seconds)


@dataclass
class VetReport:
    """What vetting found: the model opened, its table was traced and one pass ran, under limits.

    ``input_shape``: the model's (H, W, C), None for any size; ``checked_size``:
    the (H, W) the pass ran at (a model that takes any size is checked at the
    largest size actviz feeds it); ``forward_bytes``: that pass's memory worked
    out before running it; ``seconds``: the whole check as the caller waited for
    it; ``peak_memory_mb``: the child's peak resident memory.
    """

    name: str
    kind: str
    input_shape: tuple
    checked_size: tuple
    layer_count: int
    spatial_layer_count: int
    declared_weight_bytes: int
    forward_bytes: int
    load_seconds: float
    forward_seconds: float
    seconds: float
    peak_memory_mb: float
    notes: list[str] = field(default_factory=list)
    scanned: FileScan | None = field(default=None, repr=False)
    ok: bool = True

    def summary(self) -> str:
        """One sentence for the person who uploaded the model."""
        height, width = self.checked_size
        return (
            f"Checked in a separate process in {self.seconds:.1f} s: {self.layer_count} layers, "
            f"{self.declared_weight_bytes / 1e6:,.1f} MB of weights; one image of {height} x {width} pixels takes "
            f"{self.forward_seconds:.2f} s and about {self.forward_bytes / 1e6:,.0f} MB to run."
        )


# --- the parent's side ---------------------------------------------------------------


@contextlib.contextmanager
def private_copy(data: bytes, *, label: str = "model") -> Iterator[str]:
    """A copy of a model file's bytes in a new private folder (mode 0700), removed on exit whatever happens.

    Yields the file's path, named ``model.keras`` or ``model.h5`` after its content.
    """
    kind = file_kind(bytes(data[:8]), label)
    folder = tempfile.mkdtemp(prefix="actviz-")
    try:
        path = os.path.join(folder, "model." + kind)
        with open(path, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scan_file(path: str, *, label: str = "model", limits: Limits | None = None) -> FileScan:
    """The structure scan of the model file at ``path``, in a child process under ``limits``.

    ``path`` must be alone in a private folder (``private_copy``): the child writes there.
    """
    answer = _run_child("scan", path, label=label, limits=limits or scan_limits())
    return FileScan.from_json(answer)


def vet_file(path: str, *, label: str = "model", limits: Limits | None = None) -> VetReport:
    """Vet the model file at ``path`` (in a private folder) in child processes; see the module docstring.

    The quick scan child runs first and the configuration is checked here, so a
    file refused for what it names costs half a second, not TensorFlow's start-up.
    """
    from .scan import check_config

    started = time.monotonic()
    check_config(scan_file(path, label=label).config)
    answer = _run_child("vet", path, label=label, limits=limits or vet_limits())
    scanned = FileScan.from_json(answer.pop("scanned"))
    return VetReport(
        name=label, kind=scanned.kind, input_shape=tuple(answer["input_shape"]), checked_size=tuple(answer["checked_size"]),
        layer_count=int(answer["layer_count"]), spatial_layer_count=int(answer["spatial_layer_count"]),
        declared_weight_bytes=int(answer["declared_weight_bytes"]), forward_bytes=int(answer["forward_bytes"]),
        load_seconds=float(answer["load_seconds"]), forward_seconds=float(answer["forward_seconds"]),
        seconds=time.monotonic() - started, peak_memory_mb=float(answer["peak_memory_mb"]),
        notes=[str(n) for n in answer.get("notes", [])], scanned=scanned,
    )


def vet_model(data: bytes, *, name: str = "uploaded model", timeout: float | None = None, memory_mb: int | None = None) -> VetReport:
    """Vet an untrusted model file's bytes in a child process with limits; return what it found.

    Raises ``ModelFileError`` / ``UnsafeModelError`` (refused, with the reason),
    ``ModelCheckError`` (the file crashed the check, or broke its time or memory
    limit), ``BudgetError`` (a forward pass would take too much memory) or
    ``ServerBusyError``. ``timeout`` (seconds) and ``memory_mb`` override
    ``ACTVIZ_VET_TIMEOUT`` / ``ACTVIZ_VET_MEMORY_MB``.

    >>> report = vet_model(upload_bytes, name="my_model.keras")   # doctest: +SKIP
    >>> report.summary()                                           # doctest: +SKIP
    'Checked in a separate process in 9.8 s: 23 layers, 58.9 MB of weights; ...'
    """
    if len(data) > MAX_MODEL_BYTES:
        raise ModelFileError(f"The model file is {len(data) / 1e9:.1f} GB, more than actviz opens ({MAX_MODEL_BYTES / 1e9:.1f} GB).")
    with private_copy(data, label=name) as path:
        return vet_file(path, label=name, limits=vet_limits(timeout=timeout, memory_mb=memory_mb))


def _workers() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(value("ACTVIZ_CHECK_WORKERS"))
        return _slots


@contextlib.contextmanager
def _slot(wait: float) -> Iterator[None]:
    slots = _workers()
    if not slots.acquire(timeout=wait):
        raise ServerBusyError(
            "The server is busy checking other model files right now; try again in a minute."
        )
    try:
        yield
    finally:
        slots.release()


def _run_child(task: str, path: str, *, label: str, limits: Limits) -> dict:
    """Run ``task`` on the file at ``path`` in a child under ``limits``; its answer, or its refusal raised here."""
    folder = os.path.dirname(os.path.abspath(path))
    job = {"path": os.path.abspath(path), "label": label, "limits": [limits.memory_mb, limits.cpu_seconds]}
    with open(os.path.join(folder, "job.json"), "w") as handle:
        json.dump(job, handle)
    log_path = os.path.join(folder, "child.log")
    with _slot(limits.seconds), open(log_path, "wb") as child_log:
        process = subprocess.Popen(
            [sys.executable, "-m", "actviz.safety.isolation", task, folder], cwd=str(_ROOT), env=_child_environment(),
            stdin=subprocess.DEVNULL, stdout=child_log, stderr=child_log, start_new_session=True, close_fds=True,
        )
        try:
            code = process.wait(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            _kill(process)
            _log_failure(task, label, f"stopped after {limits.seconds:.0f} s", log_path)
            raise ModelCheckError(
                f"Checking the model file took longer than {limits.seconds:g} seconds, the limit here; it was stopped "
                "and the file refused. A model that slow to open or to run once would make the program unusable. "
                f"(Whoever runs this program can raise the limit: ACTVIZ_{task.upper()}_TIMEOUT.)"
            ) from None
        except BaseException:  # the caller was interrupted: never leave the child running
            _kill(process)
            raise
    return _answer(task, code, folder, label=label, limits=limits, log_path=log_path)


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the child leads its own group (start_new_session)
    process.wait()


def _child_environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["CUDA_VISIBLE_DEVICES"] = ""  # a check needs no GPU, and must not take one from the server
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _answer(task: str, code: int, folder: str, *, label: str, limits: Limits, log_path: str) -> dict:
    if code == 0:
        result = _read_result(folder)
        if result is not None:
            if result.get("ok"):
                return result["value"]
            raise _refusal(result, task=task, label=label, log_path=log_path)
        _log_failure(task, label, "no answer", log_path)
        raise ModelCheckError("Checking the model file ended without an answer; the file is refused.")
    if code == _EXIT_MEMORY or code == -signal.SIGKILL:  # SIGKILL not sent by us: the kernel's out-of-memory killer
        _log_failure(task, label, f"out of memory (exit {code})", log_path)
        raise ModelCheckError(_memory_message(task, limits))
    if code == -signal.SIGXCPU:
        _log_failure(task, label, "processor time limit", log_path)
        raise ModelCheckError(
            f"Checking the model file used more than {limits.cpu_seconds:g} seconds of processor time, the limit "
            "here; it was stopped and the file refused."
        )
    if code < 0 and -code in _CRASH_SIGNALS:
        _log_failure(task, label, f"signal {-code}", log_path)
        what = _CRASH_SIGNALS[signal.Signals(-code)]
        raise ModelCheckError(
            f"The model file made the program reading it crash ({what}). The file is damaged, or was made to attack "
            "the program that opens it; it is refused. Nothing else was affected."
            + (f" (It may also have needed more than the {limits.memory_mb:,} MB of memory allowed.)" if -code == signal.SIGABRT else "")
        )
    _log_failure(task, label, f"exit status {code}", log_path)
    raise ModelCheckError(
        f"Checking the model file stopped unexpectedly (exit status {code}); the file is refused. "
        "If the file is genuine, the program's log has the details for whoever runs it."
    )


def _memory_message(task: str, limits: Limits) -> str:
    return (
        f"Checking the model file needed more than the {limits.memory_mb:,} MB of memory allowed, so it was stopped "
        f"and the file refused. (Whoever runs this program can raise the limit: ACTVIZ_{task.upper()}_MEMORY_MB.)"
    )


def _read_result(folder: str) -> dict | None:
    path = os.path.join(folder, "result.json")
    try:
        if os.path.getsize(path) > _MAX_ANSWER:
            return None
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return None
    return result if isinstance(result, dict) else None


def _refusal(result: dict, *, task: str, label: str, log_path: str) -> ActvizError:
    """The error the child reported, as the same ActvizError class here."""
    message = str(result.get("message", ""))[:4000] or "The model file is refused."
    kind = getattr(errors, str(result.get("error")), None)
    if isinstance(kind, type) and issubclass(kind, ActvizError) and result.get("error") != "bug":
        return kind(message)
    log.error("checking %r (%s) failed unexpectedly: %s\n%s", label, task, message, result.get("traceback", ""))
    return ModelFileError(
        f"actviz could not check this model file: reading it failed in an unexpected way ({message[:200]}). "
        "The file is refused. If it opens in Keras, this may be a bug in actviz; the program's log has the details."
    )


def _log_failure(task: str, label: str, what: str, log_path: str) -> None:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(log_path) - 2000))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    log.warning("checking model %r (%s) failed: %s\n%s", label, task, what, tail)


# --- the child's side ----------------------------------------------------------------


def _set_limits(memory_mb: float, cpu_seconds: float) -> None:
    """Limit this process: data memory, processor time, no core dumps, files at most a model's size."""
    import resource

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


def _task_scan(path: str, label: str) -> dict:
    from .scan import read_model_file

    return read_model_file(path, label=label).to_json()


def _task_vet(path: str, label: str) -> dict:
    from .scan import check_config, read_model_file

    scanned = read_model_file(path, label=label)
    _quiet_tensorflow()
    check_config(scanned.config)
    from . import building
    from ..core.probe import Probe

    started = time.monotonic()
    model, notes, declared = building.load_scanned(path, scanned)
    load_seconds = time.monotonic() - started
    probe = Probe(model)
    height, width, channels = _checked_size(probe.input_shape)
    names = [info.name for info in probe.default_layers]
    batch_shape = (1, height, width, channels)
    probe.check_budget(batch_shape, names)
    import numpy as np

    started = time.monotonic()
    probe.run(np.zeros(batch_shape, np.float32), names)
    return {
        "scanned": scanned.to_json(), "input_shape": list(probe.input_shape), "checked_size": [height, width],
        "layer_count": len(probe.table.rows), "spatial_layer_count": len(probe.spatial_layers),
        "declared_weight_bytes": declared, "forward_bytes": probe.forward_bytes(batch_shape, names),
        "load_seconds": load_seconds, "forward_seconds": time.monotonic() - started,
        "peak_memory_mb": _peak_memory_mb(), "notes": notes,
    }


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


_TASKS = {"scan": _task_scan, "vet": _task_vet}


def main(argv: list[str] | None = None) -> int:
    """The child: ``python -m actviz.safety.isolation TASK FOLDER``; limits first, then the task, then result.json."""
    task, folder = (argv if argv is not None else sys.argv[1:])[:2]
    with open(os.path.join(folder, "job.json")) as handle:
        job = json.load(handle)
    _set_limits(*job["limits"])
    try:
        result: dict = {"ok": True, "value": _TASKS[task](job["path"], job["label"])}
    except MemoryError:
        os._exit(_EXIT_MEMORY)
    except ActvizError as exc:
        result = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except RecursionError:
        result = {"ok": False, "error": "UnsafeModelError", "message": "The model file is nested too deeply to be read safely; refused."}
    except Exception as exc:  # noqa: BLE001 -- reported to the parent, which logs the traceback
        if "ResourceExhausted" in type(exc).__name__ or "out of memory" in str(exc).lower() or _near_memory_limit():
            os._exit(_EXIT_MEMORY)
        result = {"ok": False, "error": "bug", "message": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
                  "traceback": traceback.format_exc()[-4000:]}
    _write_result(folder, result)
    return 0


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
        os._exit(_EXIT_MEMORY)
    os.replace(temporary, os.path.join(folder, "result.json"))


if __name__ == "__main__":
    sys.exit(main())
