"""The one progress-bar look every runner uses: label, bar, done/total, elapsed time."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(*, enabled: bool = True, console=None, transient: bool = False, bold: bool = True) -> Progress:
    """A rich Progress; disabled bars draw nothing, so callers need no branches."""
    return Progress(
        TextColumn("[bold]{task.description}" if bold else "{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=transient,
    )


def progress_label(ctx) -> str:
    """'model [variant] task', escaped: rich would eat '[q8_0]' as a markup tag."""
    m = ctx.opened.model
    return escape(f"{m.name} [{m.variant}] {ctx.cfg.task.name}")
