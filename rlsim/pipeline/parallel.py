"""Two independent simulations at once: the autoregressive and the speculative run of one projection.

A projection simulates the same step twice (without and with speculation); the two share nothing but read-only
inputs, so the second runs in a forked copy of the process while the first runs here. The forked copy computes
exactly what this process would (same code, same state at the fork, its own random streams as before), so the
numbers are the same as one after the other; it sends back its result and the calibration notes it added.

Used when it can help: a POSIX fork, at least two CPUs available to this process, no other thread running, and not
inside a pool worker (a sweep's workers already use the cores). ``RLSIM_PARALLEL=0`` turns it off.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from typing import Any, Callable


def can_fork() -> bool:
    if os.environ.get("RLSIM_PARALLEL", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not hasattr(os, "fork"):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    if cpus < 2 or threading.active_count() > 1:
        return False
    import multiprocessing as mp

    return mp.parent_process() is None


def both(first: Callable[[], Any], second: Callable[[], Any], notes: set | None = None) -> tuple[Any, Any]:
    """``(first(), second())``; ``second`` in a forked process when ``can_fork()``. ``notes``: a set both may add to
    (the timer's calibration notes); the child's additions are merged in."""
    if not can_fork():
        return first(), second()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running the parent's exit handlers
        code = 0
        try:
            os.close(r)
            before = set(notes) if notes is not None else set()
            try:
                out = ("ok", second(), (set(notes) - before) if notes is not None else set())
                payload = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as e:  # noqa: BLE001 - re-raised in the parent
                try:
                    payload = pickle.dumps(("err", e, set()))
                except Exception:  # noqa: BLE001 - an exception that does not pickle
                    payload = pickle.dumps(("err", RuntimeError(f"{type(e).__name__}: {e}"), set()))
            with os.fdopen(w, "wb") as f:
                f.write(payload)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        a = first()
    except BaseException:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("the forked simulation ended without a result")
    status, b, added = pickle.loads(data)
    if status == "err":
        raise b
    if notes is not None:
        notes |= added
    return a, b


__all__ = ["both", "can_fork"]
