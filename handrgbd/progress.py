"""Progress of long runs: a bar on a terminal, or a log line every few seconds.

``Progress(total, desc, unit, mode)``; ``mode``: ``True`` or ``"bar"`` (tqdm), ``"log"`` (what
``--no-progress`` selects: an INFO line on the ``handrgbd.progress`` logger at most every
``LOG_EVERY_S`` seconds and at the end: done, rate, time left), ``False`` or ``"off"``
(silent, for library calls and tests).
"""

from __future__ import annotations

import logging
import time

__all__ = ["Progress", "LOG_EVERY_S", "MODES"]

log = logging.getLogger("handrgbd.progress")
log.setLevel(logging.INFO)  # shown whatever level the command set for the rest

#: seconds between two log lines in ``"log"`` mode
LOG_EVERY_S = 5.0
MODES = ("bar", "log", "off")


def _mode(mode: bool | str) -> str:
    if mode is True:
        return "bar"
    if mode is False or mode is None:
        return "off"
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES} (or True / False), got {mode!r}")
    return mode


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts ``update()`` calls toward ``total`` (``initial`` already done, e.g. on resume)."""

    def __init__(self, total: int, desc: str, unit: str = "frame", mode: bool | str = True, initial: int = 0,
                 every_s: float = LOG_EVERY_S, clock=time.monotonic):
        self.mode = _mode(mode)
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = self._start = self._logged = int(initial)
        self.every_s = every_s
        self._clock = clock
        self._t0 = self._last = clock()
        self._postfix: dict = {}
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit)

    def update(self, n: int = 1, **postfix) -> None:
        """``n`` more done; ``postfix`` (e.g. ``loss="0.012"``) shows beside the bar or in the line."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(**postfix)
        elif self.mode == "log":
            self._postfix = postfix
            now = self._clock()
            reached = self.done >= self.total > self._logged  # the line at the end, once
            if now - self._last >= self.every_s or reached:
                self._log(now)

    def _log(self, now: float) -> None:
        self._last, self._logged = now, self.done
        log.info(self.line(now, self._postfix))

    def line(self, now: float | None = None, postfix: dict | None = None) -> str:
        """``"desc: 40/120 frames (33%), 3.2 frame/s, about 25 s left"``."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        rate = (self.done - self._start) / elapsed
        plural = self.unit + ("es" if self.unit.endswith(("s", "x", "ch", "sh")) else "s")
        text = f"{self.desc}: {self.done}/{self.total} {plural}"
        if self.total > 0:
            text += f" ({100.0 * self.done / self.total:.0f}%)"
        if rate > 0:
            text += f", {rate:.3g} {self.unit}/s"
            if self.done < self.total:
                text += f", about {_duration((self.total - self.done) / rate)} left"
        if postfix:
            text += ", " + ", ".join(f"{k} {v}" for k, v in postfix.items())
        return text

    def close(self) -> None:
        """Ends the bar; in ``"log"`` mode a last line when the count moved since the last one
        (a run that stopped short, or went past its estimated total)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self.done != self._logged:
            self._log(self._clock())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
