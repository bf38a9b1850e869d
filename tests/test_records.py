"""Records: one reader per file type, closed value sets, older results upgraded on read.

The v1 fixtures in tests/data/records_v1 are real results.json / samples.jsonl files written by
evalkit runs (a speculative generation run on smollm2_135m with one differing pair, a kld run),
with every field introduced since version 1 removed and the version set back to 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from evalkit import records
from evalkit.records import (
    SCHEMA_VERSION,
    LmEvalItem,
    RecordError,
    RunResult,
    SampleRecord,
    SampleStore,
    finished_samples,
    latest_per_key,
    read_items,
    read_result,
    read_samples,
    write_items,
)

V1 = Path(__file__).parent / "data" / "records_v1"


def _run_dir(tmp_path: Path, fixture: str) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(V1 / f"{fixture}.json", d / "results.json")
    return d


def test_v1_generation_result_is_upgraded_to_a_valid_typed_record(tmp_path):
    raw = json.loads((V1 / "generation_speculative.json").read_text())
    assert raw["schema_version"] == 1 and "n_unchecked" not in raw["speculative"]
    res = read_result(_run_dir(tmp_path, "generation_speculative"))
    assert isinstance(res, RunResult)
    assert res.schema_version == SCHEMA_VERSION == 2
    assert res.status == "complete" and res.task_kind == "generation"
    assert res.backend.flavour is None and res.model.synthetic is None
    assert res.memory.draft_kv_cache_bytes is None
    s = res.speculative
    assert s is not None and (s.n_pairs, s.n_identical_outputs) == (3, 2)
    # Made before the losslessness diagnostic: its one differing pair was never checked.
    assert (s.n_numerics_explained, s.n_unexplained, s.n_unchecked) == (0, 0, 1)
    assert s.n_identical_outputs + s.n_numerics_explained + s.n_unexplained + s.n_unchecked == s.n_pairs
    assert s.divergences == []
    assert res.generation is not None and res.generation.n_samples == raw["generation"]["n_samples"]
    # RunResult.read (the runners' reader) upgrades the same way.
    assert RunResult.read(tmp_path / "run") == res


def test_v1_kld_result_is_upgraded(tmp_path):
    res = read_result(_run_dir(tmp_path, "kld"))
    assert res.task_kind == "kld" and res.kld is not None
    assert res.kld.kld_quantiles is None and res.kld.kld_quantile_levels is None and res.kld.responses is None
    raw = json.loads((V1 / "kld.json").read_text())
    assert res.kld.kld_mean == raw["kld"]["kld_mean"]


def test_current_result_round_trips_unchanged(tmp_path):
    res = read_result(_run_dir(tmp_path, "generation_speculative"))
    res.write(tmp_path / "run")
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION
    assert records.upgrade_result(written) == written  # nothing to migrate
    assert read_result(tmp_path / "run") == res


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: d.update(schema_version=0), "schema_version 0, this evalkit reads 1..2"),
        (lambda d: d.update(schema_version=99), "schema_version 99 is newer than this evalkit"),
        (lambda d: d.pop("schema_version"), "no schema_version"),
        (lambda d: d.update(status="done"), "does not validate (status:"),
        (lambda d: d.update(task_kind="bogus"), "does not validate (task_kind:"),
    ],
)
def test_unreadable_results_say_why_in_one_line(tmp_path, edit, reason):
    d = _run_dir(tmp_path, "generation_speculative")
    raw = json.loads((d / "results.json").read_text())
    edit(raw)
    (d / "results.json").write_text(json.dumps(raw))
    with pytest.raises(RecordError) as exc:
        read_result(d)
    assert reason in str(exc.value) and "\n" not in str(exc.value)
    assert RunResult.read(d) is None


def test_half_written_and_absent_results(tmp_path):
    (tmp_path / "results.json").write_text('{"schema_version": 2, "run_id": "trunc')
    with pytest.raises(RecordError, match="unreadable JSON"):
        read_result(tmp_path)
    with pytest.raises(RecordError, match="unreadable"):
        read_result(tmp_path / "nowhere")


def test_literals_cover_every_value_evalkit_writes():
    assert set(records.Status.__args__) == {"complete", "interrupted", "failed"}
    assert set(records.FinishReason.__args__) == {"stop", "length", "error"}
    assert set(records.Verdict.__args__) == {"numerics", "unexplained", "unchecked"}
    from pydantic import TypeAdapter

    from evalkit.kinds import kinds

    # task_kind: exactly the registered kinds' names (each its config's `kind` tag), like a Literal
    registered = sorted(kinds())
    assert {"generation", "lm_eval"} <= set(registered)
    assert all(kinds()[name].config.model_fields["kind"].default == name for name in registered)
    kind = TypeAdapter(records.TaskKind)
    assert [kind.validate_python(name) for name in registered] == registered
    listed = ", ".join(repr(k) for k in registered[:-1]) + f" or {registered[-1]!r}"
    with pytest.raises(ValidationError) as exc:
        kind.validate_python("bogus")
    assert exc.value.errors()[0]["msg"] == f"Input should be {listed}"


def test_sample_literal_refuses_an_unknown_finish_reason():
    line = (V1 / "samples.jsonl").read_text().splitlines()[0]
    d = json.loads(line)
    d["finish_reason"] = "content_filter"
    with pytest.raises(ValidationError):
        SampleRecord.model_validate(d)
    assert records.parse_sample(json.dumps(d)) is None


def test_v1_samples_upgraded_broken_line_counted(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    text = (V1 / "samples.jsonl").read_text()
    (d / "samples.jsonl").write_text(text + '{"schema_version": 1, "key": "cut-off')
    got = read_samples(d)
    assert got.broken_lines == 1 and len(got.records) == 3
    assert all(r.schema_version == SCHEMA_VERSION for r in got.records)
    assert all(c.spans is None for r in got.records for c in r.checks)
    assert (d / "samples.jsonl").read_text().endswith("cut-off")  # read-only: nothing rewritten
    assert read_samples(tmp_path / "absent").records == []


def test_latest_per_key_prefers_newest_success(tmp_path):
    first = records.parse_sample((V1 / "samples.jsonl").read_text().splitlines()[0])
    assert first is not None
    fail = first.model_copy(update={"error": "boom", "output": "", "finish_reason": "error"})
    newer = first.model_copy(update={"output": "newer"})
    assert latest_per_key([first, fail])[first.key] is first  # a later failure keeps the success
    assert latest_per_key([fail, first, newer])[first.key] is newer
    assert latest_per_key([fail])[first.key] is fail
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in (first, fail, newer)))
    assert finished_samples(path) == {first.key: newer}
    assert finished_samples(tmp_path / "x.jsonl") == {}


def test_sample_store_repairs_and_resumes_v1_lines(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text((V1 / "samples.jsonl").read_text() + '{"schema_version": 1, "key": "cut')
    store = SampleStore(path)
    try:
        assert store.dropped_lines == 1 and len(store.done_keys()) == 3
        store.append(store.records[0].model_copy(update={"output": "again"}))
    finally:
        store.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["schema_version"] == SCHEMA_VERSION
    assert json.loads(lines[0])["schema_version"] == 1  # kept lines are kept as written
    again = SampleStore(path)
    try:
        assert [r.output for r in again.latest()][0] == "again"
    finally:
        again.close()


def test_items_round_trip_and_skip_broken(tmp_path):
    items = [
        LmEvalItem(task="t", doc_id=i, doc_hash=f"h{i}", metric="acc", score=1.0, correct=True,
                   prediction="A", target="A")
        for i in range(3)
    ]
    write_items(tmp_path / "items.jsonl", items)
    with (tmp_path / "items.jsonl").open("a") as fh:
        fh.write('{"task": "t", "doc_')
    assert read_items(tmp_path) == items
    from evalkit.metrics import flips

    assert flips.read_items is read_items and flips.write_items is write_items  # re-exported


def test_records_do_not_import_backends():
    code = "import sys, evalkit.records; print(sorted(m for m in sys.modules if m.startswith('evalkit')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "evalkit.backends" not in out and "evalkit.records" in out
    from evalkit.backends import BackendInfo as B1
    from evalkit.backends.base import BackendInfo as B2

    assert B1 is B2 is records.BackendInfo


def test_report_loader_upgrades_instead_of_skipping(tmp_path):
    from evalkit.report.load import load_runs

    root = tmp_path / "outputs"
    run = root / "constraints" / "smollm2_135m" / "llama_cpp-x"
    run.parent.mkdir(parents=True)
    shutil.copytree(_run_dir(tmp_path, "generation_speculative"), run)
    loaded = load_runs([root])
    assert loaded.warnings == [] and len(loaded.runs) == 1
    assert loaded.runs[0].result.speculative.n_unchecked == 1


def test_sibling_scan_is_typed(tmp_path):
    from evalkit.rundir import completed_runs_of_task

    task = tmp_path / "outputs" / "kld"
    for i, fixture in enumerate(("kld", "kld")):
        d = task / f"v{i}" / "llama_cpp-x"
        d.mkdir(parents=True)
        shutil.copy(V1 / f"{fixture}.json", d / "results.json")
    (task / "v1" / "llama_cpp-x" / "results.json").write_text("{broken")
    found = list(completed_runs_of_task(task / "v0" / "llama_cpp-x"))
    assert [p.parent.name for p, _ in found] == ["v0"]
    assert isinstance(found[0][1], RunResult) and found[0][1].kld is not None
