"""lm-eval's result dictionary -> evalkit records: per-task scores and per-item verdicts."""

from __future__ import annotations

import math
from typing import Any

from evalkit.records import LmEvalItem, LmEvalTaskScore


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def primary_metric(res: dict[str, Any], task: str) -> tuple[str, str]:
    """(metric, filter) a task is judged by: its first metric under its first filter."""
    cfg = res.get("configs", {}).get(task, {})
    metrics = [m["metric"] for m in cfg.get("metric_list") or [] if isinstance(m.get("metric"), str)]
    filters = [f["name"] for f in cfg.get("filter_list") or [] if "name" in f] or ["none"]
    row = res["results"].get(task, {})
    for metric in metrics:
        for flt in filters:
            if f"{metric},{flt}" in row:
                return metric, flt
    # Groups and tasks without metric_list: the first "metric,filter" key that is not a stderr.
    for key in row:
        if "," in key and "_stderr" not in key:
            metric, flt = key.split(",", 1)
            return metric, flt
    return (metrics[0] if metrics else "acc"), filters[0]


def task_scores(res: dict[str, Any]) -> dict[str, LmEvalTaskScore]:
    groups = set(res.get("group_subtasks", {}) or {})
    n_samples = res.get("n-samples", {}) or {}
    out = {}
    for task, row in res["results"].items():
        metric, flt = primary_metric(res, task)
        metrics = {k: _num(v) for k, v in row.items() if "," in k}
        n = n_samples.get(task, {}).get("effective")
        if n is None and task in groups:
            n = sum(n_samples.get(t, {}).get("effective", 0) for t in res["group_subtasks"][task]) or None
        version = res.get("versions", {}).get(task)
        out[task] = LmEvalTaskScore(
            metric=metric,
            value=metrics.get(f"{metric},{flt}"),
            stderr=metrics.get(f"{metric}_stderr,{flt}"),
            n=n,
            filter=flt,
            higher_is_better=(res.get("higher_is_better", {}).get(task) or {}).get(metric),
            is_group=task in groups,
            n_shot=res.get("n-shot", {}).get(task),
            version=str(version) if version is not None else None,
            metrics=metrics,
        )
    return out


def _prediction(sample: dict[str, Any], output_type: str) -> tuple[str, list[float] | None]:
    resps = sample.get("filtered_resps") or []
    if output_type == "multiple_choice" and resps and all(isinstance(r, (list, tuple)) for r in resps):
        lls = [float(r[0]) for r in resps]
        best = max(range(len(lls)), key=lls.__getitem__)
        args = sample.get("arguments") or []
        choice = args[best][1] if best < len(args) and len(args[best]) > 1 else str(best)
        return f"{str(choice).strip()} (choice {best})", lls
    if not resps:
        return "", None
    first = resps[0]
    if isinstance(first, (list, tuple)):  # loglikelihood: (logprob, is_greedy)
        return f"{float(first[0]):.6f} greedy={bool(first[1])}", [float(first[0])]
    if isinstance(first, (int, float)):  # loglikelihood_rolling
        return f"{float(first):.6f}", [float(first)]
    return str(first), None


def items(res: dict[str, Any]) -> list[LmEvalItem]:
    """One item per scored document of every leaf task, judged by the task's primary metric."""
    out = []
    for task, samples in (res.get("samples") or {}).items():
        metric, flt = primary_metric(res, task)
        output_type = res.get("configs", {}).get(task, {}).get("output_type", "")
        for s in samples:
            if s.get("filter", flt) != flt:
                continue
            score = _num(s.get(metric))
            correct = (score == 1.0) if score in (0.0, 1.0) else None
            prediction, lls = _prediction(s, output_type)
            target = s.get("target")
            args = s.get("arguments") or []
            if output_type == "multiple_choice" and isinstance(target, int) and 0 <= target < len(args):
                target = f"{args[target][1].strip()} (choice {target})"
            out.append(
                LmEvalItem(
                    task=task,
                    doc_id=int(s["doc_id"]),
                    doc_hash=str(s.get("doc_hash", "")),
                    metric=metric,
                    score=score,
                    correct=correct,
                    prediction=prediction,
                    target=str(target),
                    logprobs=lls,
                )
            )
    return out
