"""The queue panel: every job from the job table, the selected one's live progress and preview,
cancel / retry / run-next / delete, pause / resume. Refreshed by a timer, so what it shows is
the table's state whoever changed it (another tab, the CLI, the API)."""

# no `from __future__ import annotations`: gradio finds the gr.SelectData parameter by its real annotation
from dataclasses import dataclass
from typing import Any

from studio.api.context import ApiContext
from studio.jobs.errors import JobNotFound, JobStateError
from studio.web import jobs_view as view

REFRESH_S = 1.0
LIST_LIMIT = 200


@dataclass
class QueuePanel:
    selected: Any  # gr.Textbox holding the selected job's full id


def _table(ctx: ApiContext) -> tuple[list[list[Any]], list[str]]:
    jobs = ctx.queue.list(limit=LIST_LIMIT)
    queued = [j["id"] for j in jobs if j["status"] == "queued"]  # list() gives queued jobs in run order
    place = {jid: i for i, jid in enumerate(queued)}
    return [view.queue_row(j, place.get(j["id"])) for j in jobs], [j["id"] for j in jobs]


def _dataframe(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=view.QUEUE_COLUMNS)


def refresh(ctx: ApiContext, selected: str, memo: dict):
    """One timer tick. ``memo`` (per browser session) remembers what is shown, so unchanged
    parts are skipped instead of re-sent every second."""
    import gradio as gr

    memo = dict(memo or {})
    rows, ids = _table(ctx)
    table = gr.skip() if rows == memo.get("rows") else _dataframe(rows)
    memo["rows"] = rows
    detail = _detail(ctx, (selected or "").strip(), memo)
    return (table, ids, *detail, memo)


def _detail(ctx: ApiContext, job_id: str, memo: dict):
    """(status markdown, progress html, preview image, output image, files, links markdown)."""
    import gradio as gr

    if memo.get("job") != job_id:
        memo.update(job=job_id, after=0, preview=None, shown=None)
    if not job_id:
        return ("Select a job in the table (or submit one).", "", None, None, None, "")
    try:
        job = ctx.queue.get(job_id)
    except JobNotFound:
        return (f"No job `{job_id}`.", "", None, None, None, "")
    events = ctx.queue.events(after_id=memo["after"], job_id=job_id, limit=1000)
    if events:
        memo["after"] = events[-1]["id"]
    fresh_preview = view.latest_preview(events)
    position = ctx.queue.position(job_id) if job["status"] == "queued" else None
    status = view.status_line(job, position)
    bar = view.progress_html(job)
    preview = gr.skip()
    if fresh_preview and fresh_preview != memo.get("preview"):
        memo["preview"] = fresh_preview
        preview = view.preview_image(fresh_preview)
    elif memo.get("shown") is None:
        preview = view.preview_image(memo.get("preview"))
    outputs = (gr.skip(), gr.skip(), gr.skip())
    if memo.get("shown") != job["status"]:  # result widgets change only with the job's state
        files = view.result_files(job, ctx.outputs_root)
        present = [f["abs"] for f in files if _exists(f["abs"])]
        outputs = (view.first_of(files, "image"), present or None, view.links_markdown(files))
        memo["shown"] = job["status"]
    return (status, bar, preview, *outputs)


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def act(ctx: ApiContext, action: str, job_id: str) -> str:
    """cancel | retry | front | delete on the selected job; the answer is a one-line note."""
    import gradio as gr

    job_id = (job_id or "").strip()
    if not job_id:
        raise gr.Error("Select a job first.")
    try:
        if action == "cancel":
            job = ctx.queue.cancel(job_id)
            return "Canceled." if job["status"] == "canceled" else "Cancel requested; the job stops at its next step."
        if action == "retry":
            ctx.queue.retry(job_id)
            return "Requeued with the same seed."
        if action == "front":
            ctx.queue.move(job_id, "front")
            return "Runs next."
        if action == "delete":
            ctx.queue.delete(job_id)
            return "Deleted from the history (outputs stay on disk)."
    except (JobNotFound, JobStateError) as exc:
        raise gr.Error(str(exc)) from None
    raise gr.Error(f"unknown action {action!r}")


def _action_fn(ctx: ApiContext, action: str):
    def handler(job_id: str) -> str:
        return act(ctx, action, job_id)

    return handler


def build_queue_panel(ctx: ApiContext, selected) -> QueuePanel:
    """``selected`` is created unrendered by the caller so task tabs (built first) can target it."""
    import gradio as gr

    gr.Markdown("### Queue")
    table = gr.Dataframe(headers=view.QUEUE_COLUMNS, value=_dataframe([]), interactive=False, wrap=True,
                         column_widths=["15%", "22%", "15%", "6%", "10%", "22%", "10%"],
                         elem_id="queue-table", max_height=320)
    ids = gr.State([])
    memo = gr.State({})
    selected.render()
    with gr.Row():
        cancel = gr.Button("Cancel", size="sm", variant="stop", elem_id="queue-cancel")
        retry = gr.Button("Retry", size="sm", elem_id="queue-retry")
        front = gr.Button("Run next", size="sm", elem_id="queue-run-next")
        delete = gr.Button("Delete", size="sm", elem_id="queue-delete")
    note = gr.Markdown(elem_id="queue-note")
    status = gr.Markdown(elem_id="job-status")
    bar = gr.HTML(elem_id="job-progress")
    preview = gr.Image(label="Live preview", type="pil", interactive=False, elem_id="job-preview", height=160)
    output = gr.Image(label="Result", type="filepath", interactive=False, elem_id="job-output", height=240)
    files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="job-files")
    links = gr.Markdown(elem_id="job-links")
    with gr.Row():
        pause = gr.Button("Pause queue", size="sm", elem_id="queue-pause")
        resume = gr.Button("Resume queue", size="sm", elem_id="queue-resume")

    detail = [status, bar, preview, output, files, links]
    timer = gr.Timer(REFRESH_S)
    timer.tick(lambda sel, m: refresh(ctx, sel, m), inputs=[selected, memo], outputs=[table, ids, *detail, memo],
               show_progress="hidden", queue=False)

    def pick(ids_, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return ids_[row] if 0 <= row < len(ids_) else gr.skip()

    table.select(pick, inputs=[ids], outputs=[selected], queue=False)
    for button, action in ((cancel, "cancel"), (retry, "retry"), (front, "front"), (delete, "delete")):
        button.click(_action_fn(ctx, action), inputs=[selected], outputs=[note], queue=False)
    pause.click(lambda: (ctx.queue.pause(), "Queue paused: running jobs finish, no new ones start.")[1],
                outputs=[note], queue=False)
    resume.click(lambda: (ctx.queue.resume(), "Queue resumed.")[1], outputs=[note], queue=False)
    return QueuePanel(selected=selected)
