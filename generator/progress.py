"""A rich progress bar for rendering: denoising steps across the whole build."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .build import Node
from .build import Progress as BuildProgress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class RichProgress(BuildProgress):
    """``rendering 3/12 pictures ━━━━━━ 60/240 steps 4.1 it/s 0:00:14 < 0:00:44``."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._pictures = self._done = 0

    def start(self, pictures: int, steps: int) -> None:
        from rich.progress import (  # here: most builds render nothing
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._pictures, self._done = pictures, 0
        self._bar = Progress(
            TextColumn("[bold]rendering {task.fields[done]}/{task.fields[pictures]} pictures"),
            BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn(),
            disable=self.disable, transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("render", total=steps, done=0, pictures=pictures, rate="")

    def advance_steps(self, steps: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, steps)
            speed = self._bar.tasks[0].speed
            self._bar.update(self._task, rate=f"{speed:.2f} it/s" if speed else "")

    def picture_done(self, node: Node) -> None:
        self._done += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, done=self._done)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
