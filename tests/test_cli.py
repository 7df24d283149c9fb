"""The `studio` CLI: help everywhere, generate (+ --from-metadata), batch sweeps, jobs, bad input → 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from studio.cli import app

runner = CliRunner()

SUBCOMMANDS = [
    ["generate"], ["generate", "test_gradient"], ["batch"], ["serve"], ["worker"], ["tasks"], ["eval"], ["bench"],
    ["train"], ["jobs"], ["jobs", "list"], ["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"], ["jobs", "move"],
    ["jobs", "pause"], ["jobs", "resume"], ["jobs", "prune"], ["jobs", "delete"], ["models", "list"],
    ["adapters", "list"],
]


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_console_script_help_is_fast_and_imports_no_torch():
    out = subprocess.run([str(Path(sys.executable).parent / "studio"), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "generate" in out.stdout and "jobs" in out.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, studio.cli; print('torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False"


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(cmd, gradient_task):
    result = _run(*cmd, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


PLUGIN_COMMANDS = [["generate", name] for name in ("image", "vfx", "diffscaler", "music")] + [["music", "themes"]]


@pytest.mark.parametrize("cmd", PLUGIN_COMMANDS, ids=" ".join)
def test_every_plugin_command_has_help(cmd):
    """Each built-in plugin appears in the CLI through its schema; a one-command plugin CLI keeps its verb."""
    result = _run(*cmd, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert ("--seed" if cmd[0] == "generate" else "song") in result.output.lower()


def test_generate_flags_from_schema_and_reproduce_from_metadata(tmp_path, gradient_task):
    result = _run("generate", "test_gradient", "--steps", "3", "--colour", "red", "--width", "20",
                  "--out", str(tmp_path / "a"), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{"):])
    png = Path(record["paths"][0])
    assert png.exists() and Image.open(png).size == (20, 24)
    again = _run("generate", "--from-metadata", str(png), "--out", str(tmp_path / "b"), "--json")
    assert again.exit_code == 0, again.output
    copy = Path(json.loads(again.stdout[again.stdout.index("{"):])["paths"][0])
    assert copy != png and copy.read_bytes() == png.read_bytes()
    assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(png)))


def test_list_fields_take_repeated_singular_flags(tmp_path, gradient_task, monkeypatch):
    from studio.tasks import registry
    from studio.tasks.base import TaskInputs

    class ListInputs(TaskInputs):
        tags: list[str] = []

    seen = {}
    monkeypatch.setattr("studio.cli._generate", lambda task, inputs, *a, **k: seen.update(inputs))
    task = type(gradient_task)()
    task.Inputs = ListInputs
    task.name = "list_probe"
    registry.register(task)
    try:
        assert _run("generate", "list_probe", "--tag", "a", "--tags", "b:0.5").exit_code == 0
    finally:
        registry.unregister("list_probe")
    assert seen["tags"] == ["a", "b:0.5"]


def test_bad_input_exits_2_naming_the_field(tmp_path, gradient_task):
    bad = _run("generate", "test_gradient", "--steps", "0", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "steps" in bad.output
    bad = _run("generate", "test_gradient", "--steps", "2", "--fail-at", "5", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "fail_at" in bad.output
    assert _run("generate", "test_gradient", "--colour", "pink").exit_code == 2
    unknown = _run("generate", "no_such_task")
    assert unknown.exit_code == 2 and "no_such_task" in unknown.output
    exposed = _run("serve", "--host", "0.0.0.0", "--db", str(tmp_path / "j.db"))
    assert exposed.exit_code == 2 and "--token" in exposed.output  # refused before anything starts
    missing = _run("generate", "--from-metadata", str(tmp_path / "nope.png"))
    assert missing.exit_code == 2 and "--from-metadata" in missing.output
    assert list(tmp_path.rglob("*.png")) == []


def test_batch_sweeps_seeds_and_reports_failures(tmp_path, gradient_task):
    toml = tmp_path / "b.toml"
    toml.write_text('[[jobs]]\ntask = "test_gradient"\nseeds = [1, 2]\ncolour = ["red", "green"]\nsteps = 2\n'
                    '[[jobs]]\ntask = "test_gradient"\nsteps = 3\nfail_at = 1\n')
    result = _run("batch", str(toml), "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 1  # one job failed
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["succeeded"] == 4 and summary["failed"] == 1
    ok = [r for r in summary["jobs"] if r["status"] == "succeeded"]
    assert sorted((r["seed"], Path(r["paths"][0]).exists()) for r in ok) == [(1, True), (1, True), (2, True), (2, True)]
    assert len({Path(r["paths"][0]).read_bytes() for r in ok}) == 4  # every combination differs
    yaml_file = tmp_path / "b.yaml"
    yaml_file.write_text("jobs:\n  - task: test_gradient\n    seed: 5\n    steps: 1\n")
    assert _run("batch", str(yaml_file), "--out", str(tmp_path / "y")).exit_code == 0


def test_batch_validation_errors_exit_2_before_running(tmp_path, gradient_task):
    toml = tmp_path / "bad.toml"
    toml.write_text('[[jobs]]\ntask = "test_gradient"\nsteps = 1\n[[jobs]]\ntask = "test_gradient"\nwidth = 1\n')
    result = _run("batch", str(toml), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "jobs[2]" in result.output and "width" in result.output
    assert not (tmp_path / "out").exists()  # nothing ran
    assert _run("batch", str(tmp_path / "missing.toml")).exit_code == 2


def test_jobs_commands_against_the_table(tmp_path, gradient_task):
    from studio.jobs.queue import JobQueue

    db = tmp_path / "jobs.db"
    q = JobQueue(db)
    a, b = q.submit("test_gradient", {"seed": 1})["id"], q.submit("test_gradient", {"seed": 2})["id"]
    listed = json.loads(_run("jobs", "list", "--db", str(db), "--json").stdout)
    assert [j["id"] for j in listed] == [a, b]
    assert json.loads(_run("jobs", "move", b, "front", "--db", str(db), "--json").stdout)["id"] == b
    assert [j["id"] for j in q.list(status="queued")] == [b, a]
    assert json.loads(_run("jobs", "cancel", a, "--db", str(db), "--json").stdout)["status"] == "canceled"
    assert json.loads(_run("jobs", "retry", a, "--db", str(db), "--json").stdout)["attempt"] == 2
    assert json.loads(_run("jobs", "show", a, "--db", str(db), "--json").stdout)["seed"] == 1
    _run("jobs", "pause", "--db", str(db))
    assert q.is_paused()
    _run("jobs", "resume", "--db", str(db))
    assert not q.is_paused()
    assert _run("jobs", "show", "f" * 32, "--db", str(db)).exit_code == 2
    assert _run("jobs", "retry", b, "--db", str(db)).exit_code == 2  # queued jobs cannot be retried
    assert _run("jobs", "prune", "--db", str(db)).exit_code == 2
    tasks = json.loads(_run("tasks", "--json").stdout)
    assert "test_gradient" in [t["name"] for t in tasks["tasks"]]
