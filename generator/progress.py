"""What a build reports while rendering, and the rich progress bar the CLI shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress as RichBar
    from rich.progress import TaskID


class Progress:
    """Rendering progress: the build calls these; this base class shows nothing."""

    def start(self, pictures: int, steps: int) -> None: ...
    def advance_steps(self, steps: int) -> None: ...
    def picture_done(self, key: str) -> None: ...
    def say(self, line: str) -> None: ...
    def stop(self) -> None: ...


#: The progress shown while a build renders: a renderer, which holds no ``Progress``,
#: reaches it through ``note``.
_SHOWN: list[Progress] = []


def note(line: str) -> None:
    """A line above the bar while rendering (``compiling the UNet …``); else nothing."""
    for progress in _SHOWN:
        progress.say(line)


class RichProgress(Progress):
    """``rendering 3/12 pictures ━━━━━━ 60/240 steps 4.1 it/s 0:00:14 < 0:00:44``."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self._bar: RichBar | None = None
        self._task: TaskID | None = None
        self._pictures = self._done = 0

    def start(self, pictures: int, steps: int) -> None:
        from rich.progress import (  # here: most builds render nothing
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._pictures, self._done = pictures, 0
        self._bar = Bar(
            TextColumn("[bold]rendering {task.fields[done]}/{task.fields[pictures]} pictures"),
            BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn(),
            disable=self.disable, transient=False,
        )
        self._bar.start()
        _SHOWN.append(self)
        self._task = self._bar.add_task("render", total=steps, done=0, pictures=pictures, rate="")

    def advance_steps(self, steps: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, steps)
            speed = self._bar.tasks[0].speed
            self._bar.update(self._task, rate=f"{speed:.2f} it/s" if speed else "")

    def picture_done(self, key: str) -> None:
        self._done += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, done=self._done)

    def say(self, line: str) -> None:
        if self._bar is not None and not self.disable:
            self._bar.console.print(line, markup=False, highlight=False)

    def stop(self) -> None:
        if self in _SHOWN:
            _SHOWN.remove(self)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
