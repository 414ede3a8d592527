"""A progress bar for runs that take more than a few seconds: on stderr, shown only when stderr is a terminal
(and ``RLSIM_NO_PROGRESS`` is unset), appearing after ``delay_s`` so that quick runs print nothing extra, and
removed when the run ends (the results stay uncluttered)."""

from __future__ import annotations

import os
import sys
import threading


def progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("RLSIM_NO_PROGRESS")


class StageProgress:
    """``with StageProgress("projecting", total=2) as p: ...; p.advance("speculative")``."""

    def __init__(self, label: str, total: int | None = None, delay_s: float = 2.0, enabled: bool | None = None):
        self.label, self.total, self.delay_s = label, total, delay_s
        self.enabled = progress_enabled() if enabled is None else enabled
        self._p = self._task = self._timer = None
        self._started = False
        self._lock = threading.Lock()

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        cols = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if self.total:
            cols += [BarColumn(), MofNCompleteColumn()]
        cols.append(TimeElapsedColumn())
        self._p = Progress(*cols, console=Console(stderr=True), transient=True)
        self._task = self._p.add_task(self.label, total=self.total)
        self._timer = threading.Timer(self.delay_s, self._start)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _start(self) -> None:
        with self._lock:
            if self._p is not None and not self._started:
                self._p.start()
                self._started = True

    def advance(self, description: str | None = None, n: int = 1) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=n, **({"description": f"{self.label}: {description}"}
                                                      if description else {}))

    def describe(self, description: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"{self.label}: {description}")

    def __exit__(self, *exc):
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._p is not None and self._started:
                self._p.stop()
            self._p = None
        return False


__all__ = ["StageProgress", "progress_enabled"]
