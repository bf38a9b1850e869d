"""evalkit task=speed against llama.cpp's own llama-bench: same files, threads and batch sizes.

Runs, for each model, rounds of A B (llama-bench, then evalkit, each a fresh process), so slow
drifts of a shared machine's load hit both tools alike, and prints evalkit / llama-bench for
each test and round. Target: >= 0.95 (evalkit's overhead invisible next to llama.cpp's work).

    .venv/bin/python benchmarks/speed_vs_llama_bench.py                    # smollm2 + gemma3, 2 rounds
    .venv/bin/python benchmarks/speed_vs_llama_bench.py --threads 1 --rounds 3 --json out.json

llama-bench comes from `bash scripts/llama-tools.sh` (built with the same CMake flags as
evalkit's llama-cpp-python) unless --llama-bench names a binary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def llama_bench_binary(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    from evalkit.llama_tools import build_tools

    try:
        return build_tools(ROOT) / "llama-bench"
    except RuntimeError as exc:
        sys.exit(str(exc))


def model_path(name: str) -> Path:
    from evalkit.models import load_model_config, resolve_model

    return Path(resolve_model(load_model_config(name)).path)


def run_llama_bench(binary: Path, path: Path, a) -> dict[str, dict]:
    cmd = [
        str(binary), "-m", str(path), "-p", str(a.pp), "-n", str(a.tg), "-t", str(a.threads),
        "-b", str(a.batch), "-ub", str(a.ubatch), "-fa", "1" if a.flash_attn else "0",
        "-ctk", a.kv, "-ctv", a.kv, "-r", str(a.reps), "-ngl", str(a.ngl), "-o", "json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    tests = {}
    for r in rows:
        name = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        tests[name] = {"mean": r["avg_ts"], "sd": r["stddev_ts"], "samples": r["samples_ts"]}
    meta = {k: rows[0].get(k) for k in ("build_commit", "cpu_info", "gpu_info", "backends", "model_type", "n_threads", "n_batch", "n_ubatch")}
    return {"tests": tests, "meta": meta, "command": " ".join(cmd)}


def run_evalkit(model: str, path: Path, a, workdir: Path, tag: str) -> dict[str, dict]:
    run_dir = workdir / tag
    cmd = [
        sys.executable, "-m", "evalkit", f"model={model}", f"model.path={path}", "task=speed",
        f"task.pp=[{a.pp}]", f"task.tg=[{a.tg}]", f"task.repetitions={a.reps}",
        f"backend.n_threads={a.threads}", f"backend.n_batch={a.batch}", f"backend.n_ubatch={a.ubatch}",
        f"backend.flash_attn={str(a.flash_attn).lower()}", f"backend.type_k={a.kv}", f"backend.type_v={a.kv}",
        f"backend.n_gpu_layers={a.ngl}", "print_table=false", "progress=false", f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=workdir)
    speed = json.loads((run_dir / "results.json").read_text())["speed"]
    tests = {
        t["name"]: {"mean": t["tokens_per_s_mean"], "sd": t["tokens_per_s_sd"], "samples": t["samples_tokens_per_s"]}
        for t in speed["tests"]
    }
    meta = {k: speed[k] for k in ("build", "backend", "n_threads", "n_batch", "n_ubatch", "n_ctx")}
    return {"tests": tests, "meta": meta, "command": " ".join(cmd[1:])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["smollm2_135m", "gemma3_270m"])
    p.add_argument("--threads", type=int, default=None, help="default: physical cores")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--ubatch", type=int, default=512)
    p.add_argument("--pp", type=int, default=512)
    p.add_argument("--tg", type=int, default=128)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2, help="A B rounds per model")
    p.add_argument("--ngl", type=int, default=0, help="GPU layers (0: CPU; -1: all on a GPU build)")
    p.add_argument("--kv", default="f16")
    p.add_argument("--flash-attn", action="store_true")
    p.add_argument("--llama-bench", default=None)
    p.add_argument("--path", action="append", default=[], metavar="NAME=FILE",
                   help="use this GGUF for model NAME (machines without the embedded packages)")
    p.add_argument("--json", default=None, help="write every figure here")
    a = p.parse_args()
    if a.threads is None:
        from evalkit.hardware import physical_cores

        a.threads = physical_cores()
    binary = llama_bench_binary(a.llama_bench)
    record: dict = {"args": vars(a), "llama_bench": str(binary), "models": {}}
    with tempfile.TemporaryDirectory(prefix="evalkit-vs-llama-bench-") as tmp:
        work = Path(tmp)
        paths = dict(item.split("=", 1) for item in a.path)
        for model in a.models:
            path = Path(paths[model]) if model in paths else model_path(model)
            rounds = []
            for i in range(a.rounds):
                t0 = time.time()
                lb = run_llama_bench(binary, path, a)
                ek = run_evalkit(model, path, a, work, f"{model}-{i}")
                rounds.append({"llama_bench": lb, "evalkit": ek})
                brief = ", ".join(
                    f"{t} {ek['tests'][t]['mean']:.1f}/{lb['tests'][t]['mean']:.1f}"
                    for t in lb["tests"]
                )
                print(f"[{model} round {i + 1}/{a.rounds}, {time.time() - t0:.0f} s] evalkit/llama-bench t/s: {brief}", flush=True)
            record["models"][model] = rounds
    print()
    print(table(record))
    if a.json:
        Path(a.json).write_text(json.dumps(record, indent=2))
    return 0


def table(record: dict) -> str:
    a = record["args"]
    lines = [
        f"threads {a['threads']}, n_batch {a['batch']}, n_ubatch {a['ubatch']}, KV {a['kv']}, "
        f"flash_attn {int(a['flash_attn'])}, ngl {a['ngl']}, {a['reps']} repetitions, {a['rounds']} A/B rounds",
        "",
        "| model | test | round | llama-bench t/s | evalkit t/s | evalkit / llama-bench |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for model, rounds in record["models"].items():
        names = list(rounds[0]["llama_bench"]["tests"])
        for name in names:
            ratios = []
            for i, r in enumerate(rounds, 1):
                lb, ek = r["llama_bench"]["tests"][name], r["evalkit"]["tests"][name]
                ratio = ek["mean"] / lb["mean"]
                ratios.append(ratio)
                lines.append(
                    f"| {model} | {name} | {i} | {lb['mean']:.2f} ± {lb['sd']:.2f} | "
                    f"{ek['mean']:.2f} ± {ek['sd']:.2f} | {ratio:.3f} |"
                )
            lb_all = statistics.mean(r["llama_bench"]["tests"][name]["mean"] for r in rounds)
            ek_all = statistics.mean(r["evalkit"]["tests"][name]["mean"] for r in rounds)
            lines.append(
                f"| {model} | {name} | all | {lb_all:.2f} | {ek_all:.2f} | "
                f"**{ek_all / lb_all:.3f}** (rounds {min(ratios):.3f}–{max(ratios):.3f}, "
                f"median {statistics.median(ratios):.3f}) |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
