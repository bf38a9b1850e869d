"""`python -m evalkit [-m] [model=...] [backend=...] [task=...] [key=value ...]`

Hydra composes the config; before it runs anything, a preflight composes and validates every
job of the command (every point of a sweep too), so a typo fails in a second with one line
instead of a traceback after an hour of sweeping.
"""

from __future__ import annotations

import itertools
import logging
import signal
import sys
import traceback
from pathlib import Path

from evalkit.errors import ConfigError, EvalkitError

_EXIT_CODES: list[int] = []
_PASSTHROUGH_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc", "--version"}
_VALUE_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--package", "-p", "--experimental-rerun"}
_GROUPS = ("model", "backend", "task")
_MAX_SWEEP = 2000


def fail(message: str, code: int = 2) -> None:
    print(f"evalkit: error: {message}", file=sys.stderr)
    sys.exit(code)


def _split_argv(argv: list[str]) -> tuple[list[str], bool, bool]:
    """(overrides, multirun, passthrough): flags Hydra handles itself skip the preflight."""
    overrides: list[str] = []
    multirun = passthrough = False
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _PASSTHROUGH_FLAGS or arg.split("=")[0] in _PASSTHROUGH_FLAGS:
            passthrough = True
        elif arg in _VALUE_FLAGS:
            skip = True
        elif arg.startswith("-") and not arg.startswith("~"):
            continue
        else:
            overrides.append(arg)
    return overrides, multirun, passthrough


def _user_config_dirs(argv: list[str], parsed: list) -> list[str]:
    """Search path entries the user adds (--config-dir DIR, hydra.searchpath=[file://DIR,...]):
    Hydra reads their model/backend/task options too, so the preflight must know them."""
    entries: list[str] = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            entries.append(f"file://{Path(argv[i + 1]).expanduser().resolve()}")
        elif arg.startswith("--config-dir="):
            entries.append(f"file://{Path(arg.split('=', 1)[1]).expanduser().resolve()}")
    for ov in parsed:
        if ov.key_or_group == "hydra.searchpath" and isinstance(ov.value(), list):
            entries += [str(v) for v in ov.value()]
    return entries


def preflight(argv: list[str]) -> None:
    """Compose and validate every job the command would run; raise ConfigError on the first bad one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from evalkit.config import validate_run_config
    from evalkit.paths import CONF_DIR

    overrides, multirun, passthrough = _split_argv(argv)
    printing = {"--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}
    if multirun and any(a in printing or a.split("=")[0] in printing for a in argv):
        raise ConfigError("--cfg/--info print the config of one job: drop -m (--multirun) to print it")
    if passthrough:
        return
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except Exception as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
            raise ConfigError(f"bad override '{text}': {detail}") from None

    search_path = _user_config_dirs(argv, parsed)
    group_dirs = [CONF_DIR] + [Path(e.removeprefix("file://")) for e in search_path if e.startswith("file://")]
    axes: list[list[str]] = []
    if search_path:
        axes.append([f"hydra.searchpath=[{','.join(search_path)}]"])
    for ov in parsed:
        key = ov.key_or_group
        if key == "hydra/launcher" and not ov.is_sweep_override():
            from evalkit.sweep import check_launcher

            check_launcher(ov.get_value_element_as_str())
        if key.startswith("hydra"):
            continue
        if ov.is_sweep_override():
            if not multirun:
                raise ConfigError(
                    f"'{ov.input_line}' sweeps over values: add -m (--multirun) to sweep, "
                    "or write a list as key=[a,b]"
                )
            values = [str(v) for v in ov.sweep_string_iterator()]
        else:
            values = [ov.get_value_element_as_str()] if ov.value() is not None else ["null"]
        if key in _GROUPS:
            known = sorted({p.stem for d in group_dirs for p in (d / key).glob("*.yaml")})
            for v in values:
                if v not in known:
                    raise ConfigError(f"unknown {key} '{v}'; available: {', '.join(known)}")
        prefix = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}.get(ov.type.name, "")
        axes.append([f"{prefix}{key}={v}" if ov.type.name != "DEL" else f"~{key}" for v in values])

    combos = list(itertools.islice(itertools.product(*axes), _MAX_SWEEP + 1))
    if len(combos) > _MAX_SWEEP:
        raise ConfigError(f"the sweep has more than {_MAX_SWEEP} jobs")
    register_resolvers()
    seen_files: set[str] = set()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        for combo in combos:
            try:
                cfg = compose(config_name="config", overrides=list(combo))
            except Exception as exc:
                lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
                text = " ".join(lines[:2]) if lines else type(exc).__name__
                raise ConfigError(f"{text} (overrides: {' '.join(combo) or 'none'})") from None
            data = OmegaConf.to_container(cfg, resolve=True)
            run_cfg = validate_run_config(data)  # type: ignore[arg-type]
            _preflight_task(run_cfg, seen_files)


def _preflight_task(run_cfg, seen: set[str]) -> None:
    """The backend can do what the task kind needs; the kind's own checks; named models exist."""
    from evalkit.kinds import check_capabilities, get_kind
    from evalkit.models import load_model_config

    task = run_cfg.task
    kind = get_kind(task.kind)
    check_capabilities(kind, task.name, run_cfg.backend.type)
    if run_cfg.model.quant:  # an unknown ladder type fails before the first job of a sweep
        from evalkit.models.ladder import normalize_quant

        normalize_quant(run_cfg.model.quant)
    if kind.preflight is not None:
        kind.preflight(run_cfg, seen)
    draft = getattr(run_cfg.backend, "draft_model", None)
    if draft and getattr(run_cfg.backend, "speculative", "none") == "draft":
        load_model_config(draft)


def register_resolvers() -> None:
    """What composing conf/ needs first: the run-dir resolver and the schemas' default nodes."""
    from omegaconf import OmegaConf

    from evalkit.config import register_hydra_defaults
    from evalkit.rundir import run_dir_resolver

    register_hydra_defaults()

    if not OmegaConf.has_resolver("evalkit_run_dir"):
        OmegaConf.register_new_resolver("evalkit_run_dir", run_dir_resolver)


def _job(cfg) -> int:
    """One Hydra job: validate, run, and map every failure to one line and an exit code."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from evalkit.config import validate_run_config
    from evalkit.run import execute

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    code = 0
    said = ""  # the one line printed for a failure (a launcher plugin sends it back too)
    try:
        run_cfg = validate_run_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        result = execute(run_cfg, out_dir)
        if result.status != "complete":
            said = f"evalkit: {result.status}: {result.message} ({out_dir})"
            print(said, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        print(
            f"evalkit: interrupted; finished samples are saved in {out_dir}, "
            "re-run the same command to resume",
            file=sys.stderr,
        )
        _EXIT_CODES.append(130)
        raise
    except EvalkitError as exc:
        said = f"evalkit: error: {exc}"
        print(said, file=sys.stderr)
        code = exc.exit_code
    except Exception as exc:  # a bug: one line here, the traceback in the run directory
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "error.log").write_text(traceback.format_exc())
        said = (
            f"evalkit: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            f"(traceback in {out_dir / 'error.log'})"
        )
        print(said, file=sys.stderr)
        code = 1
    _EXIT_CODES.append(code)
    from evalkit.sweep import JobFailed, launched_elsewhere

    if code and launched_elsewhere():
        # A launcher plugin (SLURM, Ray, submitit_local) ran this job in another process: the
        # parent never sees _EXIT_CODES, so the failure travels back as an exception instead.
        raise JobFailed(f"{said or 'evalkit: job failed'} [exit code {code}]")
    return code


def _on_sigterm(signum, frame):  # SIGTERM flushes like Ctrl-C: nothing finished is lost
    raise KeyboardInterrupt


def main() -> None:
    import hydra

    from evalkit.paths import CONF_DIR

    argv = sys.argv[1:]
    try:
        preflight(argv)
    except EvalkitError as exc:
        fail(str(exc), exc.exit_code)
    register_resolvers()
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    entry = hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")(_job)
    try:
        entry()
    except KeyboardInterrupt:
        sys.exit(130)
    if not _EXIT_CODES and not set(argv) & _PASSTHROUGH_FLAGS:
        from evalkit.sweep import uses_launcher_plugin

        if uses_launcher_plugin(argv):
            sys.exit(0)  # every job ran in the launcher's processes; a failed one raised JobFailed
        sys.exit(1)  # Hydra refused the command and has said why
    sys.exit(max(_EXIT_CODES, default=0))


if __name__ == "__main__":
    main()
