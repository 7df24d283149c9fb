"""Job-system benchmark: ``studio bench jobs [--quick] [--json]`` → docs/benchmarks/jobs.md.

Measures, with the real coordinator and a spawned worker process:
- dispatch latency: submit → the worker starting the job, one job at a time on an idle queue (p50, p95);
- throughput: N trivial jobs submitted one by one, wall time from the first submit to the last finish;
- model cache: submit → done for the first job on a model (cold: the worker builds it) and the next (warm);
- idle RSS of ``studio serve`` (API + web + coordinator + worker processes) after start-up, and of
  ``studio worker`` alone.
The trivial task (``bench_noop``) writes no file; the cache probe builds a 4-layer 1024-wide MLP.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import Field

from studio.tasks.base import ModelKey, RunContext, Task, TaskInputs, TaskResult

EXTRA = "studio.bench.jobs:NoopTask"


class NoopInputs(TaskInputs):
    model: str = Field("none", description="'none' loads nothing; any other name builds an MLP once per worker.")


class NoopTask(Task):
    name = "bench_noop"
    title = "Benchmark no-op"
    description = "Does nothing (job-system benchmark); a named model builds a small MLP."
    Inputs = NoopInputs
    output_kinds = ("json",)

    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32") -> Any:
        if not key.model or key.model == "none":
            return None
        import torch

        torch.manual_seed(0)
        layers = [torch.nn.Linear(1024, 1024) for _ in range(4)]
        return torch.nn.Sequential(*layers).to(device)

    def run(self, pipeline: Any, inputs: NoopInputs, ctx: RunContext) -> TaskResult:
        ctx.progress(1.0, "done")
        return TaskResult(data={"loaded": pipeline is not None})


def run(quick: bool = False) -> dict[str, Any]:
    os.environ["STUDIO_EXTRA_TASKS"] = ",".join(p for p in (os.environ.get("STUDIO_EXTRA_TASKS"), EXTRA) if p)
    from studio.jobs.plugins import load_extra_tasks

    load_extra_tasks()
    n_latency, n_throughput = (30, 200) if quick else (100, 1000)
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as tmp:
        results = _queue_numbers(Path(tmp), n_latency, n_throughput)
        results.update(_idle_rss(Path(tmp)))
    results["quick"] = quick
    _write_markdown(results)
    return results


def _queue_numbers(tmp: Path, n_latency: int, n_throughput: int) -> dict[str, Any]:
    from studio.jobs.service import JobService

    with JobService(tmp / "jobs.db", tmp / "outputs", workers=1) as service:
        q = service.queue
        _wait_ready(service)
        _run_one(q, {})  # first job pays the worker's lazy imports
        # 1. dispatch latency on an idle queue
        latencies = []
        for _ in range(n_latency):
            job = _run_one(q, {})
            latencies.append((job["started_at"] - job["created_at"]) * 1000)
        # 2. throughput: one-by-one submits; first submit → last finish, both stamped in the job table
        ids = [q.submit("bench_noop", {})["id"] for _ in range(n_throughput)]
        jobs = _wait_all(q, ids)
        elapsed = max(j["finished_at"] for j in jobs) - min(j["created_at"] for j in jobs)
        # 3. model cache: cold (worker builds the model) then warm (cache hit)
        cold = _timed(q, {"model": "mlp-a"})  # includes the worker's first torch import
        warm = statistics.median(_timed(q, {"model": "mlp-a"}) for _ in range(5))
        cold_model = _timed(q, {"model": "mlp-b"})  # another model, torch already imported: the build alone
    return {
        "dispatch_p50_ms": round(statistics.median(latencies), 2),
        "dispatch_p95_ms": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 2),
        "jobs_per_s": round(n_throughput / elapsed, 1),
        "throughput_jobs": n_throughput,
        "cold_start_ms": round(cold, 1),
        "cold_start_model_only_ms": round(cold_model, 1),
        "warm_start_ms": round(warm, 1),
    }


def _wait_ready(service, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not all(w["ready"] for w in service.workers_info()):
        if time.time() > deadline:
            raise RuntimeError("worker did not start")
        time.sleep(0.05)


def _run_one(q, inputs: dict[str, Any]) -> dict[str, Any]:
    job = q.submit("bench_noop", inputs)
    return _wait_all(q, [job["id"]])[0]


def _timed(q, inputs: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    job = _run_one(q, inputs)
    if job["status"] != "succeeded":
        raise RuntimeError(f"benchmark job failed: {job['error']}")
    return (time.perf_counter() - t0) * 1000


def _wait_all(q, ids: list[str], timeout: float = 600) -> list[dict[str, Any]]:
    """Wait with a cheap count query (a busy client would steal the CPU it is measuring)."""
    deadline, marks = time.time() + timeout, ",".join("?" * len(ids))
    sql = f"SELECT COUNT(*) FROM jobs WHERE id IN ({marks}) AND status IN ('succeeded', 'failed', 'canceled')"
    while q.db.conn().execute(sql, ids).fetchone()[0] < len(ids):
        if time.time() > deadline:
            raise RuntimeError("benchmark jobs did not finish")
        time.sleep(0.0005 if len(ids) == 1 else 0.02)
    return [q.get(i) for i in ids]


# ---- idle memory of real processes


def _rss_tree_mb(pid: int) -> tuple[float, float]:
    """(RSS of ``pid``, RSS of it and all its descendants) in MB, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))

    def rss(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        total += rss(p)
        stack += children.get(p, [])
    return rss(pid), total


def _idle_rss(tmp: Path) -> dict[str, Any]:
    studio = str(Path(sys.executable).parent / "studio")
    env = {**os.environ, "STUDIO_STATE": str(tmp / "state"), "STUDIO_OUTPUTS": str(tmp / "out")}
    out: dict[str, Any] = {}
    port = _free_port()
    serve = subprocess.Popen([studio, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        if _wait_http(f"http://127.0.0.1:{port}/api/health", 240):
            time.sleep(5)  # let the worker finish importing and settle
            own, total = _rss_tree_mb(serve.pid)
            out.update(idle_rss_mb=round(total, 1), idle_server_process_rss_mb=round(own, 1))
    finally:
        serve.terminate()
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()
    worker = subprocess.Popen([studio, "worker", "--db", str(tmp / "w.db")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(20)
        own, total = _rss_tree_mb(worker.pid)
        out.update(idle_coordinator_rss_mb=round(own, 1), idle_worker_cmd_rss_mb=round(total, 1))
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    if "idle_rss_mb" not in out:  # no web extra: the headless coordinator is the server
        out["idle_rss_mb"] = out["idle_worker_cmd_rss_mb"]
        out["idle_rss_note"] = "studio serve did not start; measured studio worker"
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.5)
    return False


def _write_markdown(r: dict[str, Any]) -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "jobs.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = os.cpu_count()
    load = os.getloadavg()[0]
    rows = [
        ("throughput (trivial jobs, 1 worker)", f"{r['jobs_per_s']} jobs/s ({r['throughput_jobs']} jobs)", "≥ 200 jobs/s"),
        ("dispatch latency p50 (submit → worker start)", f"{r['dispatch_p50_ms']} ms", "< 10 ms"),
        ("dispatch latency p95", f"{r['dispatch_p95_ms']} ms", ""),
        ("cold start (first job on a model: worker imports torch, builds 4×1024² MLP)", f"{r['cold_start_ms']} ms", ""),
        ("cold start, torch already imported (build only)", f"{r['cold_start_model_only_ms']} ms", ""),
        ("warm start (same model, cache hit)", f"{r['warm_start_ms']} ms", ""),
        ("idle `studio serve` RSS (process tree)", f"{r.get('idle_rss_mb')} MB", "< 500 MB"),
        ("  of which the server process", f"{r.get('idle_server_process_rss_mb', 'n/a')} MB", ""),
        ("idle `studio worker` coordinator process", f"{r.get('idle_coordinator_rss_mb')} MB", ""),
        ("idle `studio worker` tree (coordinator + 1 worker)", f"{r.get('idle_worker_cmd_rss_mb')} MB", ""),
    ]
    lines = [
        "# Job system benchmark",
        "",
        f"`studio bench jobs{' --quick' if r['quick'] else ''}` (studio/bench/jobs.py). Machine: {cpu} CPU cores, "
        f"1-min load average {load:.1f} at the end of the run (the machine is shared). Local executor, "
        "1 spawned worker process, SQLite WAL job table, trivial task `bench_noop` (no files).",
        "",
        "| measure | result | goal |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Dispatch latency is `started_at − created_at` from the job table: the worker stamps `started_at`",
        "when it begins the job, so it covers the submit transaction, the dispatcher wake-up, the claim",
        "transaction and the pipe to the worker process. Throughput counts from the first submit to the",
        "last job's `finished_at`, both stamped in the job table.",
        "",
        "Workers import plugins lazily (the default), so an idle worker holds no torch; the cold start",
        "therefore includes the worker importing torch as well as building the model. `studio worker",
        "--preload` imports every plugin at start instead (faster first job, ~250 MB more per idle worker).",
        "",
    ]
    if r.get("idle_rss_note"):
        lines.append(f"Note: {r['idle_rss_note']}.")
    path.write_text("\n".join(lines) + "\n")
