"""``studio``: the command line (typer). Every heavy import happens inside the command that needs it,
so ``studio --help`` stays fast.

Commands: generate TASK (flags from the task's schema) · batch FILE · serve · worker ·
jobs list|show|cancel|retry|pause|resume|move|delete|prune · tasks · models list · adapters list ·
eval TASK · bench NAME · train TASK CONFIG · and ``studio <task> ...`` for plugins that ship a cli.py.
Bad input exits with code 2 and a message naming the field; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import importlib
import json
import sys
import typing
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperGroup

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
BENCH_DIR = Path(__file__).resolve().parent / "bench"


# ---------------------------------------------------------------------------------------------
# output helpers


def _emit(obj: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2, default=str))
    else:
        typer.echo(text if text is not None else json.dumps(obj, indent=2, default=str))


def _fail(message: str, code: int = 2) -> typing.NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _describe_error(exc: Exception) -> str:
    from studio.jobs.errors import describe_error

    return describe_error(exc)


def _is_bad_input(exc: Exception) -> bool:
    import pydantic

    from studio.tasks.base import InputError

    return isinstance(exc, (pydantic.ValidationError, InputError))


# ---------------------------------------------------------------------------------------------
# schema → typer options (one schema makes CLI flags, API models and web widgets)


def _unwrap_optional(annotation: Any) -> Any:
    import types

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _cli_type(name: str, annotation: Any) -> tuple[Any, Any]:
    """(the type typer sees, a converter back to the schema's value)."""
    import enum

    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if annotation in (bool, int, float, str):
        return annotation, lambda v: v
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        choice_enum = enum.Enum(f"{name}_choices", {str(c): str(c) for c in choices}, type=str)
        by_text = {str(c): c for c in choices}
        return choice_enum, lambda v: by_text[v.value if isinstance(v, enum.Enum) else v]
    if origin in (list, tuple, set):
        return list[str], lambda v: [_maybe_json(x) for x in v]
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return str, lambda v: v
    return str, _maybe_json  # nested structures are given as JSON text


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _help_for(field: Any) -> str:
    text = (field.description or "").strip()
    if field.is_required():
        return text + "  (required)"
    if field.default is not None:
        return text + f"  (default: {field.default})"
    return text


def _task_command(task: Any):
    """A typer command for ``task``: one ``--flag`` per schema field (unset flags keep the schema default)."""
    import inspect

    fields = task.Inputs.model_fields
    converters: dict[str, Any] = {}
    params, annotations = [], {}
    for name, field in fields.items():
        cli_type, convert = _cli_type(name, field.annotation)
        converters[name] = convert
        decl = ["--" + name.replace("_", "-")]
        if typing.get_origin(cli_type) is list and name.endswith("s") and name[:-1] not in fields:
            decl.append("--" + name[:-1].replace("_", "-"))  # repeatable singular: --adapter a:0.8 --adapter b
        option = typer.Option(None, *decl, help=_help_for(field), show_default=False)
        annotations[name] = Optional[cli_type]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[cli_type]))
    run_opts = {
        "out": (Optional[Path], typer.Option(None, "--out", help="Output folder (default: the studio's outputs/).")),
        "device": (str, typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 …")),
        "dtype": (str, typer.Option("float32", "--dtype", help="float32 or bfloat16.")),
        "as_json": (bool, typer.Option(False, "--json", help="Print the result as JSON.")),
    }
    for name, (ann, option) in run_opts.items():
        annotations[name] = ann
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=ann))

    def command(**kwargs: Any) -> None:
        opts = {k: kwargs.pop(k) for k in run_opts}
        inputs = {k: converters[k](v) for k, v in kwargs.items() if v is not None and v != [] and v != ()}
        _generate(task.name, inputs, inputs.get("seed"), str(opts["out"]) if opts["out"] else None,
                  opts["device"], opts["dtype"], opts["as_json"])

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    command.__name__ = task.name
    sub = typer.Typer(add_completion=False)
    sub.command(name=task.name, help=task.description or task.title or task.name)(command)
    return typer.main.get_command(sub)


class GenerateGroup(TyperGroup):
    """``studio generate TASK [flags]``: one sub-command per task, built from its schema on demand."""

    def list_commands(self, ctx: Any) -> list[str]:
        from studio.jobs.plugins import all_tasks

        return sorted(all_tasks())

    def get_command(self, ctx: Any, name: str) -> Any:
        from studio.jobs.plugins import all_tasks

        task = all_tasks().get(name)
        return _task_command(task) if task is not None else None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from studio.tasks.registry import load_errors

            errors = load_errors()
            hint = f" (it failed to load: {errors[name]})" if name in errors else ""
            _fail(f"TASK: unknown task {name!r}{hint}; available: {', '.join(self.list_commands(ctx)) or 'none'}")
        return super().resolve_command(ctx, args)


def _generate(task_name: str, inputs: dict[str, Any], seed: int | None, out: str | None, device: str,
              dtype: str, as_json: bool) -> None:
    """Validate, run in this process with a progress bar, print the output paths."""
    import time
    import uuid

    from studio.jobs.queue import validate_inputs
    from studio.jobs.runner import result_to_json
    from studio.paths import outputs_dir
    from studio.store.outputs import OutputStore

    try:
        spec, seed = validate_inputs(task_name, {**inputs, **({"seed": seed} if seed is not None else {})})
    except Exception as exc:
        if _is_bad_input(exc) or isinstance(exc, KeyError):
            _fail(_describe_error(exc))
        raise
    store = OutputStore(Path(out) if out else outputs_dir())
    run_id = uuid.uuid4().hex
    final = store.final_dir(run_id, time.time())
    result = _run_with_bar(task_name, spec, seed, final, store, run_id, device, dtype, quiet=as_json)
    record = {"task": task_name, "seed": seed, **result_to_json(result, final, store.root),
              "paths": [str(f.path) for f in result.files]}
    _emit(record, as_json, "\n".join(str(f.path) for f in result.files) or str(final))


def _run_with_bar(task_name, spec, seed, final, store, run_id, device, dtype, quiet=False, label=None):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from studio.jobs.runner import run_job

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[msg]}"), TimeElapsedColumn(), console=console,
                  disable=quiet, transient=False) as bar:
        handle = bar.add_task(label or task_name, total=1.0, msg="loading")

        def progress(fraction: float, message: str, preview: Any) -> None:
            bar.update(handle, completed=fraction, msg=message)

        result = run_job(task_name, spec, seed, final, progress, device=device, dtype=dtype, job_id=run_id, store=store)
        bar.update(handle, completed=1.0, msg="done")
    return result


# ---------------------------------------------------------------------------------------------
# the app; unknown top-level names resolve to plugins' own CLIs (studio <task> ...)


class StudioGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *sorted(n for n in _plugin_cli_names() if n not in self.commands)]

    def get_command(self, ctx: Any, name: str) -> Any:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in _plugin_cli_names():
            module = importlib.import_module(f"studio.tasks.{name}.cli")
            # a group even when the plugin has one command, so `studio music themes x.mid` keeps its verb
            cmd = typer.main.get_group(module.app)
            cmd.name = name
        return cmd


def _plugin_cli_names() -> list[str]:
    # a file check, not an import: `studio --help` must not import every plugin (and torch)
    return sorted(p.parent.name for p in TASKS_DIR.glob("*/cli.py"))


app = typer.Typer(cls=StudioGroup, no_args_is_help=True, add_completion=False,
                  help="Studio: a multimodal generation studio.", context_settings={"help_option_names": ["-h", "--help"]})
jobs_app = typer.Typer(no_args_is_help=True, help="Inspect and steer the job queue.")
models_app = typer.Typer(no_args_is_help=True, help="Models in the asset library.")
adapters_app = typer.Typer(no_args_is_help=True, help="Adapters (LoRA, affiners) in the asset library.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")
app.add_typer(adapters_app, name="adapters")

JSON_OPT = typer.Option(False, "--json", help="Machine-readable output.")


@app.command()
def tasks(as_json: bool = JSON_OPT) -> None:
    """List the available tasks (built-in and plugins) with their outputs."""
    from studio.jobs.plugins import all_tasks
    from studio.tasks.registry import load_errors

    found = all_tasks()
    rows = [{"name": t.name, "title": t.title, "description": t.description, "outputs": list(t.output_kinds),
             "default_model": t.default_model, "schema": t.json_schema()} for t in found.values()]
    errors = load_errors()
    if as_json:
        _emit({"tasks": rows, "load_errors": errors}, True)
        return
    for r in rows:
        typer.echo(f"{r['name']:<14} {', '.join(r['outputs']):<22} {r['title'] or r['description']}")
    for name, err in errors.items():
        typer.echo(f"{name:<14} (failed to load: {err})")


@app.command()
def batch(
    file: Path = typer.Argument(..., help="A .toml or .yaml list of jobs (seeds = [..], list values sweep)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the file's `out`, else outputs/)."),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype"),
    as_json: bool = JSON_OPT,
) -> None:
    """Run a batch file here, without a server; exits non-zero if any job failed."""
    import time
    import uuid

    from studio.jobs.batch import BatchFileError, expand_batch, load_batch_file
    from studio.jobs.runner import result_to_json
    from studio.paths import outputs_dir
    from studio.store.outputs import OutputStore

    try:
        data = load_batch_file(file)
        jobs = expand_batch(data)
    except BatchFileError as exc:
        _fail(str(exc))
    store = OutputStore(out or (Path(data["out"]) if data.get("out") else outputs_dir()))
    results, failed = [], 0
    for n, job in enumerate(jobs, start=1):
        run_id = uuid.uuid4().hex
        final = store.final_dir(run_id, time.time())
        label = f"[{n}/{len(jobs)}] {job.name}"
        try:
            result = _run_with_bar(job.task, job.inputs, job.seed, final, store, run_id, device, dtype,
                                   quiet=as_json, label=label)
            results.append({"name": job.name, "status": "succeeded", "task": job.task, "seed": job.seed,
                            **result_to_json(result, final, store.root), "paths": [str(f.path) for f in result.files]})
        except Exception as exc:  # one failed job does not stop the batch
            failed += 1
            results.append({"name": job.name, "status": "failed", "task": job.task, "seed": job.seed,
                            "error": {"type": type(exc).__name__, "message": str(exc)}})
            if not as_json:
                typer.echo(f"{label}: failed: {type(exc).__name__}: {exc}", err=True)
    summary = {"jobs": results, "succeeded": len(jobs) - failed, "failed": failed, "out": str(store.root)}
    lines = [p for r in results for p in r.get("paths", [])]
    _emit(summary, as_json, "\n".join(lines + [f"{len(jobs) - failed} succeeded, {failed} failed"]))
    if failed:
        raise SystemExit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Any address but loopback needs --token."),
    port: int = typer.Option(7860, "--port"),
    token: Optional[str] = typer.Option(None, "--token", envvar="STUDIO_API_TOKEN", help="Bearer token for the API."),
    workers: int = typer.Option(1, "--workers", min=1),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    db: Optional[Path] = typer.Option(None, "--db", help="Job database (default: <state>/jobs.db)."),
    outputs: Optional[Path] = typer.Option(None, "--outputs", help="Outputs folder."),
) -> None:
    """Start the HTTP API and the web app with the job system (one process, its workers)."""
    if executor not in ("local", "ray"):
        _fail(f"--executor: expected local or ray, got {executor!r}")
    try:
        from studio.api.auth import TokenRequired
        from studio.api.server import serve as api_serve
    except ImportError as exc:
        _fail(f"the server needs the web extra ({exc}); install it with: pip install -e '.[web]'", 1)
    from studio.jobs.errors import CoordinatorLocked

    try:
        api_serve(host=host, port=port, token=token, workers=workers, db_path=db, outputs_dir=outputs, executor=executor)
    except TokenRequired as exc:
        _fail(f"--token: {exc}")
    except CoordinatorLocked as exc:
        _fail(str(exc), 1)


@app.command()
def worker(
    db: Optional[Path] = typer.Option(None, "--db", help="Job database (default: <state>/jobs.db)."),
    outputs: Optional[Path] = typer.Option(None, "--outputs", help="Outputs folder (default: outputs/)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (one per device)."),
    device: str = typer.Option("cpu", "--device"),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="An existing Ray cluster (ray://… or host:port)."),
    cancel_grace: float = typer.Option(10.0, "--cancel-grace", min=0.0, help="Seconds before a job ignoring cancel is killed."),
    heartbeat_timeout: float = typer.Option(60.0, "--heartbeat-timeout", min=1.0),
    cache_mb: int = typer.Option(4096, "--cache-mb", min=1, help="Model cache budget per worker."),
    preload: bool = typer.Option(False, "--preload/--no-preload", help="Import every plugin in each worker at start (faster first job, more idle memory)."),
) -> None:
    """Run the job coordinator and its workers without the HTTP server (Ctrl-C stops)."""
    import signal
    import threading

    from studio.jobs.db import default_db_path
    from studio.jobs.errors import CoordinatorLocked
    from studio.jobs.service import JobService
    from studio.paths import outputs_dir

    if executor not in ("local", "ray"):
        _fail(f"--executor: expected local or ray, got {executor!r}")
    service = JobService(db or default_db_path(), outputs or outputs_dir(), executor=executor, workers=workers,
                         device=device, ray_address=ray_address, cancel_grace_s=cancel_grace,
                         heartbeat_timeout_s=heartbeat_timeout, cache_budget_mb=cache_mb, preload_plugins=preload)
    try:
        service.start()
    except CoordinatorLocked as exc:
        _fail(str(exc), 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"coordinator ready: {service.db_path} -> {service.outputs_dir} ({workers} {executor} worker(s))", err=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


# ---- jobs


def _queue(db: Optional[Path]):
    from studio.jobs.db import default_db_path
    from studio.jobs.queue import JobQueue

    return JobQueue(db or default_db_path())


DB_OPT = typer.Option(None, "--db", help="Job database (default: <state>/jobs.db).")


def _job_call(fn, *args):
    from studio.jobs.errors import JobNotFound, JobStateError

    try:
        return fn(*args)
    except JobNotFound as exc:
        _fail(f"JOB_ID: {exc}")
    except (JobStateError, ValueError) as exc:
        _fail(str(exc))


def _job_line(j: dict[str, Any]) -> str:
    return f"{j['id']}  {j['task']:<14} {j['status']:<9} {j['progress'] * 100:5.1f}%  p{j['priority']}  {j['message'] or ''}"


@jobs_app.command("list")
def jobs_list(status: Optional[str] = typer.Option(None, "--status", help="queued, running, succeeded, failed, canceled"),
              task: Optional[str] = typer.Option(None, "--task"), limit: int = typer.Option(50, "--limit", min=1),
              db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Jobs: queued in run order, then running, then history (newest first)."""
    rows = _job_call(_queue(db).list, status, task, limit)
    _emit(rows, as_json, "\n".join(_job_line(j) for j in rows) or "no jobs")


@jobs_app.command("show")
def jobs_show(job_id: str, db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """One job with its spec, result or error."""
    _emit(_job_call(_queue(db).get, job_id), as_json)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Cancel: a queued job at once, a running one at its next step."""
    job = _job_call(_queue(db).cancel, job_id)
    _emit(job, as_json, _job_line(job) + ("  (cancel requested)" if job["cancel_requested"] else ""))


@jobs_app.command("retry")
def jobs_retry(job_id: str, db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Queue a failed or canceled job again (same seed)."""
    job = _job_call(_queue(db).retry, job_id)
    _emit(job, as_json, _job_line(job))


@jobs_app.command("move")
def jobs_move(job_id: str, to: str = typer.Argument(..., help="front, back or a 0-based index"),
              db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Reorder a queued job."""
    target: str | int = int(to) if to.lstrip("-").isdigit() else to
    job = _job_call(_queue(db).move, job_id, target)
    _emit(job, as_json, _job_line(job))


@jobs_app.command("delete")
def jobs_delete(job_id: str, db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Delete a finished job from the history (its output files stay)."""
    _job_call(_queue(db).delete, job_id)
    _emit({"deleted": job_id}, as_json, f"deleted {job_id}")


@jobs_app.command("pause")
def jobs_pause(db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Stop starting new jobs (running ones finish)."""
    _queue(db).pause()
    _emit({"paused": True}, as_json, "queue paused")


@jobs_app.command("resume")
def jobs_resume(db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Start jobs again."""
    _queue(db).resume()
    _emit({"paused": False}, as_json, "queue resumed")


@jobs_app.command("prune")
def jobs_prune(keep_last: Optional[int] = typer.Option(None, "--keep-last", min=0),
               older_than_days: Optional[float] = typer.Option(None, "--older-than-days", min=0.0),
               db: Optional[Path] = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Forget finished jobs beyond the newest N and/or older than D days."""
    if keep_last is None and older_than_days is None:
        _fail("--keep-last or --older-than-days: give at least one")
    older = older_than_days * 86400 if older_than_days is not None else None
    n = _job_call(_queue(db).prune, keep_last, older)
    _emit({"pruned": n}, as_json, f"pruned {n} job(s)")


# ---- asset library


@models_app.command("list")
def models_list(as_json: bool = JSON_OPT) -> None:
    """Models under models/ (config.json + safetensors + MODEL_CARD.md)."""
    from studio.paths import models_dir

    root = models_dir()
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and (d / "config.json").is_file():
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            rows.append({"name": d.name, "path": str(d), "size_bytes": size, "card": (d / "MODEL_CARD.md").is_file()})
    _emit(rows, as_json, "\n".join(f"{r['name']:<32} {r['size_bytes'] / 1e6:8.2f} MB  {'card' if r['card'] else 'no card'}"
                                   for r in rows) or f"no models in {root}")


@adapters_app.command("list")
def adapters_list(as_json: bool = JSON_OPT) -> None:
    """Adapters under adapters/ with their type, base model and rank."""
    try:
        from studio.lora import list_adapters
    except ImportError as exc:
        _fail(f"adapter listing needs studio.lora ({exc})", 1)
    rows = [a.as_dict() for a in list_adapters()]
    _emit(rows, as_json, "\n".join(f"{r['name']:<32} {r['type']:<8} base={r['base']} rank={r['rank']}" for r in rows)
          or "no adapters")


# ---- eval / bench / train (discovered by convention)


def _conventional(module: str, attr: str, what: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            _fail(what)
        raise
    fn = getattr(mod, attr, None)
    if fn is None:
        _fail(f"{module} has no {attr}()")
    return fn


def _report(result: Any, as_json: bool) -> None:
    if as_json or not isinstance(result, dict):
        _emit(result, True)
        return
    for key, value in result.items():
        typer.echo(f"{key:<32} {value}")


@app.command("eval")
def eval_(task: str, quick: bool = typer.Option(False, "--quick", help="A small, fast evaluation."), as_json: bool = JSON_OPT) -> None:
    """Evaluate a task on held-out data (studio/tasks/<task>/evaluate.py)."""
    fn = _conventional(f"studio.tasks.{task}.evaluate", "run", f"TASK: task {task!r} has no evaluate.py")
    _report(fn(quick=quick), as_json)


@app.command()
def bench(name: str, quick: bool = typer.Option(False, "--quick"), as_json: bool = JSON_OPT) -> None:
    """Run a benchmark (studio/bench/<name>.py); writes docs/benchmarks/<name>.md."""
    available = sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem != "__init__")
    fn = _conventional(f"studio.bench.{name}", "run", f"NAME: no benchmark {name!r}; available: {', '.join(available) or 'none'}")
    _report(fn(quick=quick), as_json)


@app.command()
def train(task: str, config: Path = typer.Argument(..., help="TOML or YAML training config.")) -> None:
    """Train a task's model from a config (studio/tasks/<task>/train.py)."""
    if not config.is_file():
        _fail(f"CONFIG: {config} does not exist")
    fn = _conventional(f"studio.tasks.{task}.train", "main", f"TASK: task {task!r} has no train.py")
    fn(str(config))


# ---------------------------------------------------------------------------------------------


generate_app = typer.Typer(cls=GenerateGroup, add_completion=False,
                           help="Generate with TASK here (no server): flags come from the task's schema; prints output paths.")
app.add_typer(generate_app, name="generate")


@generate_app.callback(invoke_without_command=True)
def generate(
    ctx: typer.Context,
    from_metadata: Optional[Path] = typer.Option(
        None, "--from-metadata", help="Reproduce a file from the recipe it carries (PNG/MP4/WAV/GLB/MIDI or its .json sidecar)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (with --from-metadata)."),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype"),
    as_json: bool = JSON_OPT,
) -> None:
    """Generate with TASK here (no server): flags come from the task's schema; prints output paths."""
    if ctx.invoked_subcommand is not None:
        return
    if from_metadata is None:
        typer.echo(ctx.get_help())
        raise SystemExit(2)
    from studio.io.media import RecipeNotFound, read_recipe
    from studio.store.recipe import inputs_of

    try:
        task_name, inputs, seed = inputs_of(read_recipe(from_metadata))
    except (FileNotFoundError, RecipeNotFound, KeyError, ValueError) as exc:
        _fail(f"--from-metadata: {exc}")
    _generate(task_name, inputs, seed, str(out) if out else None, device, dtype, as_json)


def main() -> None:
    from studio.jobs.plugins import load_extra_tasks

    load_extra_tasks()  # cheap: only what STUDIO_EXTRA_TASKS names
    try:
        app(prog_name="studio")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
