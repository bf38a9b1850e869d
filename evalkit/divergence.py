"""Is speculative decoding lossless here? Every divergence from plain decoding, explained.

Speculative decoding is exact in exact arithmetic: every emitted token is the target's own
choice. In floating point it is not quite: the verify batch computes several rows at once, and
llama.cpp's kernels round a many-row batch differently from a one-row decode. Two tokens whose
logits nearly tie can swap order, and the texts part ways from there on. A bug (a wrong row read,
a stale cache entry after a rejected draft) also makes texts part ways. This module tells the two
apart instead of assuming.

For each sample pair whose texts differ, both generations are replayed in process with the
runs' own settings, recording every decode (`LlamaCppBackend.traced`). At the first
differing token, the decodes that produced it are re-run from an empty cache (`replay_logits`):
the verify batch's row on the speculative side, one-token-at-a-time decoding on the plain side.
The logits of the two competing tokens in both rows give the verdict:

- numerics: both rows agree as closely as batched and single-token decoding of the same tokens
  do without any speculation (the noise floor, measured on the same prompt) and, under greedy
  decoding, the two tokens are a near tie that each row orders its own way;
- unexplained: the rows disagree by more than rounding, or the replay does not pick the tokens
  the rows say it should: a bug to find;
- unchecked: the replay could not be made (no local model file, a remote server, or the replay's
  text differs from the recorded one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evalkit.records import Divergence, RunResult, SampleRecord

# How far a verify-batch row may differ from the single-token row of the same position and still
# count as rounding: ROW_TOL times the largest difference the same prompt shows between batched
# and one-at-a-time decoding of the plain text's own tokens (no speculation involved). On
# SmolLM2 Q4_1 (CPU) that floor is 0.5-0.8 logits per 48-token answer, median 0.3 per position.
ROW_TOL = 1.5
TOP = 64  # the batch row's top tokens compared


def explain(
    spec: RunResult, base: RunResult, pairs: list[tuple[SampleRecord, SampleRecord]]
) -> list[Divergence]:
    """A Divergence for every (speculative, plain) record pair whose output text differs."""
    differing = [(s, b) for s, b in pairs if s.output != b.output]
    if not differing:
        return []
    why = _cannot_replay(spec, base)
    if why:
        return [_unchecked(s, why) for s, _ in differing]
    try:
        replay = _Replay(spec, base)
    except Exception as exc:  # a model that no longer loads, a drafter gone from the cache...
        reason = f"replay backends did not open: {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}"
        return [_unchecked(s, reason) for s, _ in differing]
    try:
        return [replay.one(s, b) for s, b in differing]
    finally:
        replay.close()


def _unchecked(rec: SampleRecord, reason: str) -> Divergence:
    return Divergence(
        prompt_id=rec.prompt_id, sample_index=rec.sample_index, seed=rec.seed, verdict="unchecked", reason=reason
    )


def _cannot_replay(spec: RunResult, base: RunResult) -> str | None:
    for r in (spec, base):
        kind = r.config.get("backend", {}).get("type")
        if kind not in ("llama_cpp", "llama_server"):
            return f"backend {kind} runs no local model to replay"
        if r.task_kind != "generation":
            return "only generation runs can be replayed"
    return None


def replay_config(result: RunResult):
    """The run's config with an in-process backend of the same settings (llama-server runs too)."""
    from evalkit.config import LlamaCppBackendConfig, validate_run_config

    data: dict[str, Any] = dict(result.config)
    backend = dict(data["backend"])
    if backend.get("type") == "llama_server":
        fields = LlamaCppBackendConfig.model_fields
        local = {k: v for k, v in backend.items() if k in fields and k != "type" and v is not None}
        backend = {"type": "llama_cpp", **local}
    data["backend"] = backend
    return validate_run_config(data)


class _Replay:
    def __init__(self, spec: RunResult, base: RunResult):
        from evalkit.backends import open_backend
        from evalkit.suite import load_suite

        self.spec_cfg, self.base_cfg = replay_config(spec), replay_config(base)
        task = self.spec_cfg.task
        self.suite = load_suite(task.file, task.sampling)
        self.prompts = {p.id: p for p in self.suite.prompts}
        self.system_prompt = task.system_prompt
        self.greedy = self.suite.sampling.temperature == 0
        self.plain = open_backend(self.base_cfg).backend
        try:
            self.spec = open_backend(self.spec_cfg).backend
        except BaseException:
            self.plain.close()
            raise

    def close(self) -> None:
        self.spec.close()
        self.plain.close()

    def one(self, srec: SampleRecord, brec: SampleRecord) -> Divergence:
        prompt = self.prompts.get(srec.prompt_id)
        if prompt is None:
            return _unchecked(srec, f"prompt {srec.prompt_id} is no longer in the task file")
        messages = prompt.messages(self.system_prompt)
        t_plain = self.plain.traced(messages, self.suite.sampling, brec.seed)
        t_spec = self.spec.traced(messages, self.suite.sampling, srec.seed)
        if t_plain.text != brec.output or t_spec.text != srec.output:
            return _unchecked(srec, "the in-process replay's text differs from the recorded one")
        s_plain, s_spec = t_plain.samples(), t_spec.samples()
        k = next((i for i, (x, y) in enumerate(zip(s_plain, s_spec)) if x[1] != y[1]), None)
        if k is None:
            return _unchecked(srec, "the replays' tokens agree where their texts do not")
        a, b = s_plain[k][1], s_spec[k][1]
        row_s, ev_s = _producer(t_plain.events, s_plain[k][0])
        row_b, ev_b = _producer(t_spec.events, s_spec[k][0])
        single = self.plain.replay_logits(t_plain.events[: ev_s + 1], row_s)
        batch = self.spec.replay_logits(t_spec.events[: ev_b + 1], row_b)
        diff = _spread(batch, single)
        toks = [tok for _, tok in s_plain][:-1]  # every decoded generated token
        chunk = max(2, int(getattr(self.spec_cfg.backend, "num_pred_tokens", 4) or 4) + 1)
        rows = self.plain.rows_batch_vs_single(t_plain.prompt, toks, chunk)
        floor = max((float(np.max(np.abs(bv - sv))) for _, bv, sv in rows), default=0.0)
        d = Divergence(
            prompt_id=srec.prompt_id,
            sample_index=srec.sample_index,
            seed=srec.seed,
            position=k,
            token_plain=a,
            token_spec=b,
            token_plain_text=self.plain.token_text(a),
            token_spec_text=self.spec.token_text(b),
            verdict="unexplained",
            reason="",
            gap_single=float(single[a] - single[b]),
            gap_batch=float(batch[b] - batch[a]),
            batch_rows=len(t_spec.events[ev_b][1]),
            row_max_abs_diff=diff,
            batch_noise_floor=floor,
        )
        if self.greedy and (int(np.argmax(single)) != a or int(np.argmax(batch)) != b):
            d.reason = "replayed rows do not choose the recorded tokens (greedy)"
        elif diff > ROW_TOL * floor:
            d.reason = (
                f"verify-batch and single-token rows differ by {diff:.3g}, more than {ROW_TOL}x the "
                f"{floor:.3g} that batched and single-token decoding of the plain text differ by"
            )
        else:
            d.verdict = "numerics"
            d.reason = (
                f"near tie flipped by batch numerics: gap {d.gap_single:.3g} single-token, "
                f"{d.gap_batch:.3g} in the {d.batch_rows}-row batch; rows differ by {diff:.3g} "
                f"(batched vs single decoding of the plain text: up to {floor:.3g})"
                if self.greedy
                else f"sampling over rows that differ by {diff:.3g} (batched vs single: up to {floor:.3g})"
            )
        return d


def _spread(batch: np.ndarray, single: np.ndarray) -> float:
    """max |batch - single| over the batch row's TOP tokens."""
    ids = np.argpartition(-batch, TOP)[:TOP]
    return float(np.max(np.abs(batch[ids] - single[ids])))


def _producer(events: list[tuple], sample_index: int) -> tuple[int, int]:
    """(row, index of the decode event) whose logits the sample at `sample_index` read."""
    row = events[sample_index][1]
    for i in range(sample_index - 1, -1, -1):
        if events[i][0] == "decode":
            return row, i
    raise ValueError("a sample before any decode")
