"""Progress of every long job, in one place: `progress(total=..., desc=...)` or `progress(iterable, ...)`.

Where the output goes decides how it looks:
- in Jupyter: tqdm's notebook widget (tqdm.auto);
- on a terminal: a tqdm bar on stderr, redrawn in place;
- anywhere else (a pipe, a log file, CI): a plain line every `interval` seconds and one at the end
  of a job that took longer than that, never a carriage-return frame.

`set_quiet(True)` (the CLI's `-q/--quiet`, or `CNNLAB_QUIET=1`) silences every bar. The estimate of
the time left counts from the end of the first update, not from the start: a first step pays for
one-time work (allocations, caches, lazy initialization) and, counted in, made a 2 s job announce
3.5 minutes. `clock` is injectable so that the estimate can be tested without waiting.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

#: Seconds between plain progress lines when the output is not a terminal (CNNLAB_PROGRESS_INTERVAL).
DEFAULT_INTERVAL = 10.0

_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) every progress bar and progress line of this process."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    """Whether progress is silenced (by `set_quiet` or the environment variable CNNLAB_QUIET=1)."""
    return _quiet or os.environ.get("CNNLAB_QUIET", "").strip().lower() in ("1", "true", "yes")


def note(line: str) -> None:
    """One line on stderr that tells what a job is doing for the user (e.g. 'note: reading ... once'),
    silenced with the progress."""
    if not is_quiet():
        print(line, file=sys.stderr, flush=True)


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a terminal but a widget can show progress)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except AttributeError:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def format_seconds(s: float) -> str:
    """'42 s', '3.5 min', '1.2 h'."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class Progress:
    """A job of `total` units (None: unknown) whose progress is shown as a bar, a widget or plain lines.

    `update(n, **stats)` adds n done units and shows `stats` (e.g. loss=0.41, acc=0.87) beside it;
    `eta()` is the estimated seconds left. Use as a context manager (or call `close()`).
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *, enabled: bool = True,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic,
                 file: TextIO | None = None, leave: bool = False, mode: str | None = None) -> None:
        self.total, self.desc, self.unit, self.leave = total, desc, unit, leave
        self.clock, self.file = clock, file
        self.interval = float(os.environ.get("CNNLAB_PROGRESS_INTERVAL", DEFAULT_INTERVAL)) \
            if interval is None else interval
        self.n, self.stats = 0, {}
        self.start = clock()
        self._first: tuple[float, int] | None = None  # (time, units) at the end of the first update
        self._last_line = self.start
        self._bar: Any = None
        self.mode = mode or self._mode(enabled)
        if self.mode in ("bar", "notebook"):
            self._bar = self._make_bar()

    def _mode(self, enabled: bool) -> str:
        if not enabled or is_quiet():
            return "off"
        if _in_notebook():
            return "notebook"
        stream = self.file or sys.stderr
        return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"

    def _make_bar(self) -> Any:
        if self.mode == "notebook":
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}{postfix}]" \
            if self.total else "{desc}: {n_fmt} {unit} [{elapsed}{postfix}]"
        return tqdm(total=self.total, desc=self.desc, unit=self.unit, leave=self.leave, file=self.file,
                    bar_format=fmt, dynamic_ncols=True, mininterval=0.5, smoothing=0)

    # -- the estimate --------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def rate(self) -> float | None:
        """Units per second since the end of the first update (None until a second update)."""
        if self._first is None:
            return None
        t0, n0 = self._first
        dt, dn = self.clock() - t0, self.n - n0
        return dn / dt if dn > 0 and dt > 0 else None

    def eta(self) -> float | None:
        """Estimated seconds left (None while unknown: no total, or fewer than two updates)."""
        r = self.rate()
        if self.total is None or r is None:
            return None
        return max(0.0, (self.total - self.n) / r)

    # -- updates -------------------------------------------------------------------------------------
    def update(self, n: int = 1, **stats: Any) -> None:
        """`n` more units done; `stats` (numbers or text) are shown beside the count."""
        self.n += n
        if self._first is None:
            self._first = (self.clock(), self.n)
        if stats:
            self.stats.update(stats)
        if self.mode == "off":
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(n)
        elif self.mode == "lines":
            now = self.clock()
            if now - self._last_line >= self.interval:
                self._last_line = now
                self._print(self._line())

    def drop(self, n: int) -> None:
        """`n` units of the total will not be needed (a search that ended early): the estimate follows."""
        if self.total is not None:
            self.total = max(self.n, self.total - n)
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.refresh()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description_str(desc, refresh=False)

    def write(self, line: str) -> None:
        """Print a line of its own (e.g. an epoch's results) without breaking the bar; nothing when off."""
        if self.mode == "off":
            return
        if self._bar is not None:
            self._bar.write(line, file=self.file or sys.stderr)
        else:
            self._print(line)

    def _postfix(self) -> str:
        """The stats and the time left, e.g. 'loss 0.41, acc 87.0%, 3.5 min left' (tqdm adds the comma before)."""
        parts = [f"{k} {_fmt(v)}" for k, v in self.stats.items()]
        eta = self.eta()
        if eta is not None:
            parts.append(f"{format_seconds(eta)} left")
        return ", ".join(parts)

    def _line(self) -> str:
        count = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total else \
            f"{self.n} {self.unit}"
        post = self._postfix()
        return f"{self.desc}: {count}, {format_seconds(self.elapsed)}" + (f", {post}" if post else "")

    def _print(self, line: str) -> None:
        print(line, file=self.file or sys.stderr, flush=True)

    def close(self) -> None:
        """End the job: the bar goes; off a terminal, a last line when the job outlasted one interval."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.elapsed >= self.interval:
            self._print(f"{self.desc}: {self.n} {self.unit} in {format_seconds(self.elapsed)}"
                        + "".join(f", {k} {_fmt(v)}" for k, v in self.stats.items()))
        self.mode = "off"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, **kwargs: Any) -> Progress | Iterator[T]:
    """A `Progress` for `total` units, or, given an iterable, its items with one update per item."""
    if iterable is None:
        return Progress(total, desc, unit, enabled=enabled, **kwargs)
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return _iterate(iterable, Progress(total, desc, unit, enabled=enabled, **kwargs))


def _iterate(iterable: Iterable[T], bar: Progress) -> Iterator[T]:
    with bar:
        for item in iterable:
            yield item
            bar.update(1)
