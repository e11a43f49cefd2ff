"""A submitted notebook running in its own kernel, asked for its answers as data.

This is the untrusted side of :mod:`nclab.assign`. The submission's code cells run in a fresh
IPython kernel (nbclient), with a time limit per cell, in a new process session. Afterwards
the grader asks the kernel for the objects the tests name: a value comes back as JSON (numbers,
arrays, sets, tuples, lists, dicts, strings), and a function becomes a
:class:`RemoteFunction`, which sends its arguments to the kernel as JSON, calls the student's
function there inside :func:`nclab.exercises.own_work`, and returns the result as JSON. No
Python object, pickle or verdict ever crosses from the kernel to the grader, so whatever the
submission does to its own kernel (monkeypatched checkers, forged outputs, patched otter) can
change the *data* it returns, never the tests that judge it.

When a cell runs past its time limit the kernel is interrupted; a kernel that then stops
answering, or dies, is killed and the notebook is run again in a new kernel without that cell,
so the tasks answered elsewhere still count. Killing a kernel kills every process it started
(its process group, its descendants, and, when the grader has made itself a child subreaper
with :func:`become_subreaper`, daemons that double-forked away).
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import nbformat
import numpy as np

__all__ = ["SubmissionError", "RemoteFunction", "Kernel", "run_submission", "become_subreaper", "encode", "decode"]

#: Largest answer (JSON text, characters) accepted from a kernel.
MAX_ANSWER_CHARS = 32_000_000
_TAG = "__nclab__"
_SETUP_TIMEOUT = 300.0
_WARM_UP = "import numpy\ntry:\n    import nclab.exercises\nexcept Exception:\n    pass"


class SubmissionError(RuntimeError):
    """The submission's code raised, timed out, or its kernel is gone; the message says which."""


# --------------------------------------------------------------------------- data in and out


def encode(x: Any, depth: int = 0) -> Any:
    """``x`` as JSON-ready data: None, bool, int, float, str, lists, and tagged dicts for
    arrays, tuples, sets, complex numbers and dicts. Torch tensors become arrays.

    Raises
    ------
    TypeError
        For anything else (functions, modules, arbitrary objects).
    """
    if depth > 32:
        raise TypeError("the answer is nested too deeply")
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (np.bool_, np.integer)):
        return x.item()
    if isinstance(x, (int, float)):
        return x
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, (complex, np.complexfloating)):
        return {_TAG: "complex", "items": [float(x.real), float(x.imag)]}
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biufc":
            return {_TAG: "list_array", "items": encode(x.tolist(), depth + 1)}
        data = x.tolist() if x.dtype.kind != "c" else [[float(v.real), float(v.imag)] for v in x.ravel()]
        return {_TAG: "ndarray", "dtype": x.dtype.str, "shape": list(x.shape), "items": data}
    if isinstance(x, list):
        return [encode(v, depth + 1) for v in x]
    if isinstance(x, (tuple, set, frozenset)):
        kind = "tuple" if isinstance(x, tuple) else "set"
        return {_TAG: kind, "items": [encode(v, depth + 1) for v in x]}
    if isinstance(x, dict):
        return {_TAG: "dict", "items": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    raise TypeError(f"a {type(x).__name__} cannot be sent between the grader and the notebook")


def decode(x: Any, depth: int = 0) -> Any:
    """Inverse of :func:`encode`; refuses anything it would not produce.

    Raises
    ------
    ValueError
        For data :func:`encode` does not produce.
    """
    if depth > 33:
        raise ValueError("nested too deeply")
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [decode(v, depth + 1) for v in x]
    if not isinstance(x, dict) or set(x) - {_TAG, "dtype", "shape", "items"} or _TAG not in x:
        raise ValueError(f"unexpected data of type {type(x).__name__}")
    kind, items = x[_TAG], x.get("items")
    if kind == "ndarray":
        dtype = np.dtype(str(x["dtype"]))
        if dtype.kind not in "biufc":
            raise ValueError(f"unexpected array type {dtype}")
        shape = tuple(int(s) for s in x["shape"])
        if dtype.kind == "c":
            flat = np.array([complex(float(a), float(b)) for a, b in items], dtype=dtype)
            return flat.reshape(shape)
        return np.array(_numbers_only(items), dtype=dtype).reshape(shape)
    if kind == "list_array":
        return np.array(decode(items, depth + 1), dtype=object)
    if kind == "complex":
        return complex(float(items[0]), float(items[1]))
    if kind == "tuple":
        return tuple(decode(v, depth + 1) for v in items)
    if kind == "set":
        return {_hashable(decode(v, depth + 1)) for v in items}
    if kind == "dict":
        return {_hashable(decode(k, depth + 1)): decode(v, depth + 1) for k, v in items}
    raise ValueError(f"unexpected tag {kind!r}")


def _numbers_only(items: Any) -> Any:
    if isinstance(items, list):
        return [_numbers_only(v) for v in items]
    if isinstance(items, (bool, int, float)):
        return items
    raise ValueError("an array holds something other than numbers")


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, dict, set, np.ndarray)):
        raise ValueError("a set or dict key is not hashable")
    return v


# --------------------------------------------------------------------------- the probe


def _probe_source(name: str) -> str:
    """Code that defines the probe function in the kernel: fetch a name, or call it."""
    import inspect

    helpers = "\n\n".join(inspect.getsource(f) for f in (encode, decode, _numbers_only, _hashable))
    return f'''
def {name}(_name, _args_json, _limit={MAX_ANSWER_CHARS}):
    import contextlib as _contextlib
    import json as _json

    import numpy as np

    _TAG = "{_TAG}"
    Any = object
{_indent(helpers)}

    import sys as _sys

    class _NoNclab:
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "nclab" or fullname.startswith("nclab."):
                raise ImportError(f"{{fullname}} cannot be loaded while your own work is being checked")

    @_contextlib.contextmanager
    def _guard():
        # nclab loaded: switch off its answers (nclab.exercises.own_work); not loaded: keep it out
        if "nclab" in _sys.modules:
            try:
                from nclab.exercises import own_work
            except Exception:
                pass
            else:
                with own_work():
                    yield
                return
        _blocker = _NoNclab()
        _sys.meta_path.insert(0, _blocker)
        try:
            yield
        finally:
            _sys.meta_path.remove(_blocker)

    _globals = globals()
    if _name not in _globals:
        return _json.dumps({{"status": "missing"}})
    _obj = _globals[_name]
    try:
        if _args_json is None:
            if callable(_obj) and not isinstance(_obj, (type, np.ndarray)):
                return _json.dumps({{"status": "callable"}})
            _out = _json.dumps({{"status": "value", "value": encode(_obj)}})
        else:
            _args = decode(_json.loads(_args_json))
            with _guard():
                _result = _obj(*_args)
            _out = _json.dumps({{"status": "value", "value": encode(_result)}})
    except (Exception, KeyboardInterrupt) as _exc:
        return _json.dumps({{"status": "raised", "type": type(_exc).__name__, "message": str(_exc)[:2000]}})
    if len(_out) > _limit:
        return _json.dumps({{"status": "raised", "type": "ValueError", "message": "the answer is too large to send to the grader"}})
    return _out
'''


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else line for line in text.splitlines())


def _raise_like(type_name: str, message: str, what: str) -> None:
    """Re-raise a submission's exception in the grader as the same built-in type (checkers
    give specific hints for NotImplementedError, LinAlgError, ...), else as SubmissionError."""
    text = f"{what} raised {type_name}: {message}"
    if type_name == "LinAlgError":
        raise np.linalg.LinAlgError(message)
    exc_type = getattr(builtins, type_name, None)
    if isinstance(exc_type, type) and issubclass(exc_type, Exception) and exc_type.__module__ == "builtins":
        try:
            exc = exc_type(message)
        except Exception:  # noqa: BLE001 - an exception type with an unusual constructor
            raise SubmissionError(text) from None
        raise exc
    raise SubmissionError(text)


class RemoteFunction:
    """A function of the submission, called in its kernel; arguments and result travel as data."""

    def __init__(self, kernel: "Kernel", name: str):
        self._kernel = kernel
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError("tests pass a submission's functions positional arguments only")
        return self._kernel.ask(self.__name__, args)

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the submission>"


# --------------------------------------------------------------------------- processes


def _sync(method: Callable[..., Any]) -> Callable[..., Any]:
    """Call a jupyter_client method that may be a coroutine function, and wait for it."""
    import inspect

    from jupyter_core.utils import run_sync

    return run_sync(method) if inspect.iscoroutinefunction(method) else method


_ADOPTING = False  # set by become_subreaper: new children of this process are a kernel's strays


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux), so that :meth:`Kernel.kill`
    also finds daemons that a submission double-forked away. Meant for a process that does
    nothing but grade (the command line): afterwards :meth:`Kernel.kill` kills every child
    process that appeared while a kernel ran. Returns whether it worked."""
    global _ADOPTING
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _ADOPTING = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _ADOPTING = False
    return _ADOPTING


def _kill_processes(pids: set[int]) -> None:
    import psutil

    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.kill()
            procs.append(p)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


# --------------------------------------------------------------------------- the kernel


@dataclass
class Kernel:
    """One kernel for one submission: runs cells, answers probes, dies with its processes.

    Parameters
    ----------
    workdir : str
        Working directory of the kernel.
    cell_timeout : float
        Seconds a cell (or a call of a student's function) may run.
    deadline : float
        ``time.monotonic()`` after which nothing more runs in this kernel.
    """

    workdir: str
    cell_timeout: float
    deadline: float = math.inf
    alive: bool = False
    _client: Any = None
    _probe: str = ""
    _own_children: set[int] = field(default_factory=set)

    def start(self, warm_up: bool = True) -> None:
        from nbclient import NotebookClient

        self._own_children = _descendants(os.getpid())
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])  # nbclient stores cells there
        client = NotebookClient(
            nb,
            timeout=max(1, int(round(self.cell_timeout))),
            kernel_name="python3",  # never the notebook's own kernelspec: the grader's Python
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": "CellTimeout", "evalue": "the cell ran past its time limit", "traceback": []},
            iopub_timeout=30,  # outputs can lag the reply on a busy machine; an answer must not be lost
            startup_timeout=120,
            record_timing=False,
            resources={"metadata": {"path": self.workdir}},
        )
        client.on_cell_error = self._on_error
        client.output = self._keep_little  # outputs: errors and probe answers only
        client.km = client.create_kernel_manager()
        client.start_new_kernel(cwd=self.workdir)
        client.start_new_kernel_client()
        self._client, self.alive = client, True
        self._probe = f"__nclab_probe_{secrets.token_hex(8)}"
        self._last_error: tuple[str, str] | None = None
        # A notebook that uses nclab gets it (and torch) loaded first, on the grader's time,
        # not on the student's per-cell limit: on a busy machine the import takes a while.
        if warm_up:
            self.run(_WARM_UP, timeout=self._budget(_SETUP_TIMEOUT))

    def _on_error(self, cell: Any, cell_index: int, execute_reply: dict) -> None:
        content = execute_reply.get("content", {})
        self._last_error = (str(content.get("ename", "Error"))[:100], str(content.get("evalue", ""))[:300])

    def _keep_little(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
        from nbformat.v4 import output_from_msg

        kind = msg["msg_type"]
        if kind == "execute_result" and cell_index == -1 or kind == "error":
            out = output_from_msg(msg)
            outs.append(out)
            return out
        return None

    def run(self, source: str, timeout: float | None = None) -> str:
        """Run one cell. Returns ``"ok"``, ``"error"`` (it raised), ``"timeout"`` or ``"dead"``."""
        from nbclient.exceptions import DeadKernelError

        if not self.alive:
            return "dead"
        self._client.timeout = max(1, int(round(timeout if timeout is not None else self.cell_timeout)))
        self._last_error = None
        cell = nbformat.v4.new_code_cell(source)
        try:
            self._client.execute_cell(cell, 0, store_history=False)
        except DeadKernelError:
            self.alive = False
            return "dead"
        except Exception:  # noqa: BLE001 - nbclient gave up on the kernel (no reply, broken channel)
            self.alive = self._responsive()
            return "dead" if not self.alive else "error"
        if not _sync(self._client.kc.is_alive)():
            self.alive = False
            return "dead"
        if self._last_error is not None and self._last_error[0] == "CellTimeout":
            return "timeout"
        return "error" if self._last_error is not None else "ok"

    @property
    def last_error(self) -> str:
        return ": ".join(filter(None, self._last_error)) if self._last_error else ""

    def _budget(self, limit: float) -> float:
        return min(limit, self.deadline - time.monotonic())

    def _responsive(self, timeout: float = 5) -> bool:
        """Whether the kernel answers a trivial request in time (after an interrupt)."""
        try:
            kc = self._client.kc
            msg_id = kc.execute("", store_history=False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                reply = _sync(kc.get_shell_msg)(timeout=max(0.1, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == msg_id:
                    return True
        except Exception:  # noqa: BLE001 - no reply, or the channel is gone
            return False
        return False

    def responsive(self) -> bool:
        if self.alive and not self._responsive():
            self.alive = False
        return self.alive

    def install_probe(self) -> bool:
        """Define the probe in the kernel (after the submission's cells)."""
        budget = self._budget(_SETUP_TIMEOUT)
        return budget > 0 and self.run(_probe_source(self._probe), timeout=budget) == "ok"

    def ask(self, name: str, args: Sequence[Any] | None) -> Any:
        """The value of ``name`` in the submission, or ``name(*args)`` called there.

        Returns the decoded value; for ``args=None`` and a function, a :class:`RemoteFunction`;
        for a missing name, None (as otter does).

        Raises
        ------
        SubmissionError
            The kernel is gone, the call timed out, or the answer is unreadable.
        """
        what = f"{name}(...)" if args is not None else name
        if not self.alive:
            raise SubmissionError(f"{what}: the notebook's kernel is no longer running")
        if self._budget(self.cell_timeout) <= 0:
            raise SubmissionError(f"{what}: the time limit for the submission is used up")
        payload = "None" if args is None else repr(json.dumps(encode(list(args))))
        cell = nbformat.v4.new_code_cell(f"{self._probe}({name!r}, {payload})")
        self._last_error = None
        outcome = self._run_probe(cell)
        if outcome != "ok":
            raise SubmissionError(f"{what}: {outcome}")
        answer = self._read_answer(cell, what)
        status = answer.get("status")
        if status == "missing":
            return None
        if status == "callable":
            return RemoteFunction(self, name)
        if status == "raised":
            _raise_like(str(answer.get("type")), str(answer.get("message")), what)
        try:
            return decode(answer.get("value"))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise SubmissionError(f"{what}: the notebook sent an unreadable answer ({exc})") from None

    def _run_probe(self, cell: Any) -> str:
        from nbclient.exceptions import DeadKernelError

        limit = self._budget(self.cell_timeout)
        self._client.timeout = max(1, int(math.ceil(limit)))
        try:
            self._client.execute_cell(cell, -1, store_history=False)
        except DeadKernelError:
            self.alive = False
            return "the notebook's kernel died"
        except Exception:  # noqa: BLE001
            self.alive = False
            return "the notebook's kernel stopped answering"
        if self._last_error is not None and self._last_error[0] == "CellTimeout":
            if not self.responsive():
                return f"it ran past its time limit ({limit:.0f} s) and the kernel stopped answering"
            return f"it ran past its time limit ({limit:.0f} s)"
        if self._last_error is not None:
            return f"the grader's probe failed ({self.last_error})"
        return "ok"

    @staticmethod
    def _read_answer(cell: Any, what: str) -> dict:
        results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
        try:
            text = ast.literal_eval(results[-1]["data"]["text/plain"])
            if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
                raise ValueError("not a string of acceptable size")
            answer = json.loads(text)
            if not isinstance(answer, dict):
                raise ValueError("not a JSON object")
            return answer
        except (IndexError, KeyError, ValueError, SyntaxError, TypeError, MemoryError) as exc:
            raise SubmissionError(f"{what}: the notebook sent an unreadable answer ({type(exc).__name__})") from None

    def kill(self) -> None:
        """Kill the kernel and every process it started; never raises."""
        client, self.alive = self._client, False
        if client is None:
            return
        self._client = None
        pids: set[int] = set()
        pgid = None
        try:
            provisioner = client.km.provisioner
            pid = getattr(provisioner, "pid", None)
            pgid = getattr(provisioner, "pgid", None)
            if pid:
                pids = _descendants(pid) | {pid}
        except Exception:  # noqa: BLE001
            pass
        try:
            client.kc.stop_channels()
        except Exception:  # noqa: BLE001
            pass
        try:
            _sync(client.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001
            pass
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        strays = _descendants(os.getpid()) - self._own_children if _ADOPTING else set()  # adopted orphans
        _kill_processes(pids | strays)
        try:
            _sync(client.km.cleanup_resources)()
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------- running a notebook


_OTTER_CELL = (
    r"\s*(#\s*Initialize Otter\s*)?import otter\s*\n\s*grader\s*=\s*otter\.Notebook\([^()]*\)\s*",
    r"\s*grader\.check(_all)?\(\s*(['\"][\w.\-]+['\"])?\s*\)\s*",
    r"\s*%pip install -q otter-grader\s*",
)


def is_otter_cell(source: str) -> bool:
    """Whether a cell only initialises otter or runs its checks in the student's kernel (the
    grader runs every test itself, so these cells are skipped: they cost an import of otter)."""
    import re

    return any(re.fullmatch(p, source) for p in _OTTER_CELL)


@dataclass
class Run:
    """What happened when a submission's cells ran."""

    kernel: Kernel | None
    notes: list[str]
    incomplete: bool


def run_submission(
    cells: Sequence[str],
    workdir: str,
    *,
    cell_timeout: float,
    deadline: float,
    attempts: int = 3,
    kernel_factory: Callable[..., Kernel] = Kernel,
) -> Run:
    """Run a submission's code cells; returns a live kernel holding its answers (or None).

    A cell that times out is interrupted; if the kernel then stops answering, or a cell kills
    it, the kernel is killed and the notebook runs again in a new kernel without that cell
    (at most ``attempts`` kernels). ``deadline`` (``time.monotonic()``) bounds everything that
    runs in the kernel: these cells, and later the calls of the student's functions.
    """
    notes: list[str] = []
    skip: set[int] = set()
    incomplete = False
    for _ in range(attempts):
        if time.monotonic() >= deadline:
            break
        kernel = kernel_factory(workdir, cell_timeout, deadline)
        try:
            kernel.start(warm_up=any("nclab" in c for c in cells))
        except Exception as exc:  # noqa: BLE001 - no kernel, no grade
            kernel.kill()
            notes.append(f"the kernel did not start ({type(exc).__name__}: {exc})")
            return Run(None, notes, True)
        failed, timed_out = _run_cells(kernel, cells, skip, deadline, cell_timeout, notes)
        incomplete = incomplete or timed_out
        if failed is None and kernel.alive:
            return Run(kernel, notes, incomplete)
        kernel.kill()
        incomplete = True
        if failed is None:  # out of time
            break
        skip.add(failed)
        notes.append(f"ran the notebook again in a new kernel without cell {failed + 1}")
    notes.append("time limit for the notebook reached" if time.monotonic() >= deadline else "gave up on the notebook")
    return Run(None, notes, True)


def _run_cells(kernel: Kernel, cells: Sequence[str], skip: set[int], deadline: float, cell_timeout: float, notes: list[str]) -> tuple[int | None, bool]:
    """The index of the cell that killed or hung the kernel (None if all ran, or time is up),
    and whether a cell ran past its time limit."""
    timed_out = False
    for i, source in enumerate(cells):
        if i in skip or not source.strip() or is_otter_cell(source):
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            notes.append(f"time limit for the notebook reached before cell {i + 1}")
            kernel.kill()
            return None, True
        outcome = kernel.run(source, timeout=min(cell_timeout, left))
        if outcome == "error" and len(notes) < 20:
            notes.append(f"cell {i + 1} raised {kernel.last_error}")
        elif outcome == "timeout":
            timed_out = True
            notes.append(f"cell {i + 1} ran past its time limit ({min(cell_timeout, left):.0f} s) and was interrupted")
            if not kernel.responsive():
                notes.append(f"the kernel stopped answering after cell {i + 1}")
                return i, True
        elif outcome == "dead":
            notes.append(f"cell {i + 1} killed the kernel")
            return i, timed_out
    return None, timed_out
