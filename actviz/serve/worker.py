"""A data set pass of the dashboard in a process of its own, so that the memory it takes is given
back to the machine when it ends.

TensorFlow's CPU allocator (oneDNN's, a best-fit pool) keeps every byte a pass ever took for the
life of the process: asking glibc to trim (``malloc_trim``) gives nothing back, as measured
(``bench/memory.py``). A server that ran one data set pass of VGG16 at 300 x 300 in batches of 32
stayed 2.4 GB larger. Here the pass runs in a child Python (``python -m actviz.serve.worker
FOLDER``): the parent writes the model (saved as ``.keras`` from the model already opened and
checked, so the child loads it as trusted) and the request into a private folder, the child
reports its progress a line at a time and writes the summary there, and the parent reads it and
removes the folder. A Stop, the server's time limit or any other end of the job kills the child.
Starting it costs about 5 seconds (importing TensorFlow, loading the model) on top of the pass.

>>> summary = summarize_apart(opened, source, gradcam=True, progress=report)   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

from .. import errors
from ..errors import ActvizError

#: Seconds a worker takes to start before its first batch (importing TensorFlow, loading the model:
#: 4 to 6 s measured on 2 cores), added to a pass's estimate.
START_SECONDS = 6.0
#: The folder holding the ``actviz`` package: the child imports this very copy.
_ROOT = Path(__file__).resolve().parents[2]


class WorkerError(ActvizError):
    """The process running a job ended without finishing it (it crashed or was killed)."""


def summarize_apart(
    opened: Any, source: Any, *, progress: Callable[[int, int], Any] | None = None, memory_bytes: int | None = None, **options: Any,
) -> Any:
    """``dataset.summarize(opened, source, progress=progress, **options)`` run in a child process:
    the same ``Summary``; the child's passes are sized to ``memory_bytes`` (default: the probe's
    ``max_bytes``) and run in the probe's precision. An ``ActvizError`` of the child is raised here
    with its words; ``progress`` may raise to stop the job (the child is killed)."""
    from ..core.precision import precision_of
    from ..dataset.summary import Summary

    folder = Path(tempfile.mkdtemp(prefix="actviz-job-"))
    try:
        opened.model.save(folder / "model.keras")
        request = {
            "source": source, "options": options, "name": opened.name, "digest": opened.loaded.digest,
            "class_names": opened.class_names, "memory": int(memory_bytes or opened.probe.max_bytes),
            "precision": precision_of(opened.probe),
        }
        (folder / "request.pickle").write_bytes(pickle.dumps(request))
        _run_child(folder, progress)
        return Summary.load((folder / "summary.npz").read_bytes())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_child(folder: Path, progress: Callable[[int, int], Any] | None) -> None:
    """Run the worker on ``folder``, passing its progress on; kill it if ``progress`` raises."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(folder / "stderr.txt", "wb") as errors_file:
        child = subprocess.Popen([sys.executable, "-m", "actviz.serve.worker", str(folder)], stdout=subprocess.PIPE,
                                 stderr=errors_file, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            for line in child.stdout:
                words = line.decode(errors="replace").split()
                if len(words) == 3 and words[0] == "progress" and progress is not None:
                    progress(int(words[1]), int(words[2]))
            child.wait()
        finally:
            if child.poll() is None:  # stopped by a Stop, a deadline or an error here: the child goes too
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            child.stdout.close()
    if child.returncode == 0:
        return
    answer = folder / "error.json"
    if answer.exists():
        found = json.loads(answer.read_text())
        raise _error_class(found["kind"])(found["message"])
    last = (folder / "stderr.txt").read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
    raise WorkerError(f"The data set pass stopped before it finished (its process ended with status {child.returncode}: "
                      f"{' '.join(last[0].split())[:200]}). Nothing was kept; try again, with fewer images if it happens again.")


def _error_class(name: str) -> type:
    """The ``ActvizError`` subclass called ``name`` (the data set's own, or one of ``errors``)."""
    from ..dataset.sources import DatasetError

    found = getattr(errors, name, None) if name != "DatasetError" else DatasetError
    return found if isinstance(found, type) and issubclass(found, ActvizError) else ActvizError


def work(folder: Path) -> int:
    """The child's side: run the request in ``folder``, write ``summary.npz`` (or ``error.json``
    for a mistake in words), report progress on stdout; the exit status says which."""
    request = pickle.loads((folder / "request.pickle").read_bytes())
    try:
        summary = _summarize(folder, request)
    except ActvizError as exc:
        (folder / "error.json").write_text(json.dumps({"kind": type(exc).__name__, "message": str(exc)}))
        return 2
    (folder / "summary.npz").write_bytes(summary.to_bytes())
    return 0


def _summarize(folder: Path, request: dict) -> Any:
    from dataclasses import replace

    from ..core.precision import at_precision
    from ..dataset.engine import summarize
    from ..safety.models import OpenModel, open_model

    loaded = open_model(folder / "model.keras", trust=True)  # the server's own save of a model it opened and checked
    opened = OpenModel(replace(loaded.loaded, name=request["name"], digest=request["digest"]), loaded.probe, request["class_names"])
    opened.probe.max_bytes = request["memory"]
    opened = at_precision(opened, request["precision"])

    def progress(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)

    return summarize(opened, request["source"], progress=progress, **request["options"])


if __name__ == "__main__":
    try:
        sys.exit(work(Path(sys.argv[1])))
    except Exception:  # a bug: its traceback for the parent's message
        traceback.print_exc()
        sys.exit(1)
