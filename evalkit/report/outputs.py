"""Outputs side by side: for each prompt and seed, every variant's answer, its checks, and where it failed.

Reading the answers next to each other is how people judge a quantization ("the QAT one opened
tighter"); the check verdicts and the highlighted spans say why a sample failed. The spans come
from the checks (CheckOutcome.spans); runs recorded before checks located their failures get them
by re-running the check on the stored text (checks are pure functions of it).
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field

from evalkit.records import CheckOutcome, SampleRecord
from evalkit.report.rows import dedupe_tasks, row_key, row_settings, settings_label
from evalkit.report.load import ReportError, Run, read_samples

FOLD_CHARS = 700  # longer answers show this much, the rest folded in <details>


@dataclass
class Answer:
    record: SampleRecord
    marks: list[tuple[int, int, str]]  # [start, end) offsets in the output, check name


@dataclass
class PromptOutputs:
    task: str
    prompt_id: str
    category: str
    prompt: str
    labels: list[str]  # the variant columns, leaderboard order
    samples: dict[int, dict[str, Answer]] = field(default_factory=dict)  # sample index -> label -> answer

    @property
    def anchor(self) -> str:
        return "out-" + "".join(ch if ch.isalnum() else "-" for ch in f"{self.task}-{self.prompt_id}")

    def seed(self, index: int) -> int | None:
        return next((a.record.seed for a in self.samples[index].values()), None)


def outcome_spans(o: CheckOutcome, text: str) -> list[tuple[int, int]]:
    """The failing spans a check recorded, else what the check finds when run again on the text."""
    if o.passed:
        return []
    if o.spans is not None:
        return [(int(a), int(b)) for a, b in o.spans]
    try:
        from evalkit.checks import compile_check

        check, params = compile_check(o.check, o.params)
        return list(check(text, params).spans or [])
    except Exception:  # an old or unknown check: the verdict and reason still show
        return []


def variant_labels(runs: list[Run]) -> dict[tuple, str]:
    """A short unique column label per leaderboard row: the variant, with the model, settings or
    hardware added only where the runs differ in them."""
    keys = {row_key(r): r for r in runs}
    models = {r.result.model.name for r in keys.values()}
    hws = {r.result.hardware.label for r in keys.values()}
    out: dict[tuple, str] = {}
    for k, r in keys.items():
        label = r.result.model.variant if len(models) == 1 else f"{r.result.model.name}:{r.result.model.variant}"
        out[k] = label
    counts = defaultdict(int)
    for v in out.values():
        counts[v] += 1
    for k, r in keys.items():
        if counts[out[k]] > 1:
            out[k] += f" [{settings_label(row_settings(r))}]"
        if len(hws) > 1:
            out[k] += f" @ {r.result.hardware.label}"
    return out


def _order(r: Run) -> tuple:
    m = r.result.model
    return (m.name, -(m.bits_per_weight or 0), m.variant)


def collect_outputs(runs: list[Run], warnings: list[str]) -> list[PromptOutputs]:
    """Every generation task's prompts, each with the variants' answers per sample index."""
    gen = [r for r in runs if r.result.generation is not None]
    by_row: dict[tuple, list[Run]] = defaultdict(list)
    for r in gen:
        by_row[row_key(r)].append(r)
    kept = [r for group in by_row.values() for r in dedupe_tasks(group, warnings)]
    labels = variant_labels(kept)
    kept.sort(key=_order)
    prompts: dict[tuple[str, str], PromptOutputs] = {}
    for run in kept:
        label = labels[row_key(run)]
        samples = read_samples(run)
        for rec in samples.records:
            key = (rec.task, rec.prompt_id)
            po = prompts.get(key)
            if po is None:
                po = prompts[key] = PromptOutputs(rec.task, rec.prompt_id, rec.category, rec.prompt, [])
            if label not in po.labels:
                po.labels.append(label)
            marks = [(a, b, o.check) for o in rec.checks for a, b in outcome_spans(o, rec.output)]
            po.samples.setdefault(rec.sample_index, {})[label] = Answer(rec, sorted(marks))
    out = sorted(prompts.values(), key=lambda p: (p.task, p.prompt_id))
    for p in out:
        p.samples = dict(sorted(p.samples.items()))
    return out


def merged(marks: list[tuple[int, int, str]], start: int, end: int) -> list[tuple[int, int, str]]:
    """Overlapping marks joined (their check names too), clipped to [start, end)."""
    out: list[list] = []
    for a, b, name in sorted(marks):
        a, b = max(a, start), min(b, end)
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
            if name not in out[-1][2]:
                out[-1][2].append(name)
        else:
            out.append([a, b, [name]])
    return [(a, b, ", ".join(n)) for a, b, n in out]


def select(outputs: list[PromptOutputs], prompt: str) -> list[PromptOutputs]:
    task, _, pid = prompt.rpartition(":")
    found = [p for p in outputs if p.prompt_id == pid and (not task or p.task == task)]
    if not found:
        known = ", ".join(f"{p.task}:{p.prompt_id}" for p in outputs[:12]) or "none (no generation runs)"
        more = f" (+{len(outputs) - 12} more)" if len(outputs) > 12 else ""
        raise ReportError(f"--samples: no prompt '{prompt}' in these runs; prompts: {known}{more}")
    return found


# --------------------------------------------------------------------------------------------
# Terminal


def _verdict_line(o: CheckOutcome) -> str:
    mark = "✔" if o.passed else ("~" if o.passed_loose else "✘")
    return f"{mark} {o.check}: {o.reason}"


def print_outputs(outputs: list[PromptOutputs], prompt: str, console, chars: int = 600) -> None:
    """One table per sample: a column per variant, the verdicts over the text, failures highlighted."""
    from rich.table import Table
    from rich.text import Text

    for po in select(outputs, prompt):
        console.print(f"\n{po.task}:{po.prompt_id} ({po.category})", style="bold", markup=False)
        console.print(Text(po.prompt, style="dim"))
        for index, answers in po.samples.items():
            table = Table(title=f"sample {index} · seed {po.seed(index)}", title_justify="left", show_lines=True)
            shown = [lab for lab in po.labels if lab in answers]
            for lab in shown:
                table.add_column(lab, ratio=1, overflow="fold")
            cells = []
            for lab in shown:
                a = answers[lab]
                rec = a.record
                verdict = "no checks" if rec.passed_strict is None else ("PASS" if rec.passed_strict else "FAIL")
                cell = Text(f"{verdict} · {rec.chars} chars · {rec.finish_reason}\n", style="bold")
                for o in rec.checks:
                    cell.append(_verdict_line(o) + "\n", style="green" if o.passed else "red")
                cell.append("\n")
                cut = min(len(rec.output), chars)
                pos = 0
                for s, e, _ in merged(a.marks, 0, cut):
                    cell.append(rec.output[pos:s])
                    cell.append(rec.output[s:e], style="bold white on red")
                    pos = e
                cell.append(rec.output[pos:cut])
                if cut < len(rec.output):
                    cell.append(f" … (+{len(rec.output) - cut} chars)", style="dim")
                cells.append(cell)
            table.add_row(*cells)
            console.print(table)
    console.print("✔ passed · ✘ failed · ~ failed strict, passed loose · highlighted: where a check failed", markup=False)


# --------------------------------------------------------------------------------------------
# HTML


def _marked(text: str, marks: list[tuple[int, int, str]], start: int, end: int) -> str:
    out, pos = [], start
    for a, b, name in merged(marks, start, end):
        out.append(html.escape(text[pos:a]))
        out.append(f"<mark class='fail' title='{html.escape(name)}'>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:end]))
    return "".join(out)


def _answer_html(label: str, a: Answer) -> str:
    rec = a.record
    if rec.passed_strict is None:
        badge = "<span class='badge'>no checks</span>"
    elif rec.passed_strict:
        badge = "<span class='badge ok'>pass</span>"
    else:
        badge = "<span class='badge bad'>fail</span>"
    checks = "".join(
        f"<li class='{'ok' if o.passed else ('loose' if o.passed_loose else 'bad')}'>"
        f"{'✔' if o.passed else ('~' if o.passed_loose else '✘')} <b>{html.escape(o.check)}</b>: {html.escape(o.reason)}</li>"
        for o in rec.checks
    )
    text = rec.output
    cut = FOLD_CHARS if len(text) > FOLD_CHARS * 1.3 else len(text)
    body = f"<pre class='out'>{_marked(text, a.marks, 0, cut)}</pre>"
    if cut < len(text):
        n_hidden = sum(1 for s, _, _ in merged(a.marks, cut, len(text)))
        more = f", {n_hidden} highlighted" if n_hidden else ""
        body += (
            f"<details class='more'><summary>show the remaining {len(text) - cut} characters{more}</summary>"
            f"<pre class='out'>{_marked(text, a.marks, cut, len(text))}</pre></details>"
        )
    meta = f"{rec.chars} chars · {rec.completion_tokens or '?'} tokens · {html.escape(rec.finish_reason)}"
    return (
        f"<div class='answer'><div class='ahead'><b>{html.escape(label)}</b> {badge}<br><span class='muted'>{meta}</span></div>"
        f"<ul class='checks'>{checks}</ul>{body}</div>"
    )


def outputs_html(outputs: list[PromptOutputs]) -> str:
    """The side-by-side section: an index of prompts and samples (anchors), then per prompt and
    sample a row of answers in a horizontally scrolling grid. Pure HTML and CSS."""
    if not outputs:
        return "<p class='muted'>No generation runs: no outputs to show.</p>"
    index = []
    for po in outputs:
        links = " ".join(f"<a href='#{po.anchor}-s{i}'>s{i}</a>" for i in po.samples)
        fails = sum(1 for ans in po.samples.values() for a in ans.values() if a.record.passed_strict is False)
        total = sum(len(ans) for ans in po.samples.values())
        index.append(
            f"<li><a href='#{po.anchor}'>{html.escape(po.task)}:{html.escape(po.prompt_id)}</a> "
            f"<span class='muted'>({html.escape(po.category)}, {fails}/{total} failed)</span> {links}</li>"
        )
    parts = [f"<nav class='out-index' id='outputs-index'><b>Prompts</b><ul>{''.join(index)}</ul></nav>"]
    for po in outputs:
        parts.append(
            f"<section class='prompt-outputs' id='{po.anchor}'><h3>{html.escape(po.task)}:{html.escape(po.prompt_id)} "
            f"<span class='muted'>{html.escape(po.category)}</span> <a class='top' href='#outputs-index'>↑ index</a></h3>"
            f"<details class='prompt-text'><summary>prompt</summary><pre class='out'>{html.escape(po.prompt)}</pre></details>"
        )
        for i, answers in po.samples.items():
            cols = [lab for lab in po.labels if lab in answers]
            grid = "".join(_answer_html(lab, answers[lab]) for lab in cols)
            parts.append(
                f"<div class='sample' id='{po.anchor}-s{i}'><p class='muted'>sample {i} · seed {po.seed(i)} · "
                f"{len(cols)} variant(s)</p><div class='scroll'><div class='answers' style='grid-template-columns:"
                f"repeat({len(cols)},minmax(300px,1fr))'>{grid}</div></div></div>"
            )
        parts.append("</section>")
    parts.append(
        "<p class='muted'>✔ passed · ✘ failed · ~ failed strict, passed loose (stray first/last line or markup "
        "forgiven) · <mark class='fail'>highlighted</mark>: where a check failed (hover for the check).</p>"
    )
    return "".join(parts)
