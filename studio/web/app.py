"""The gradio Blocks app: task tabs (one per registered task), gallery, library, queue panel.

A thin shell over the job queue (flux's ``demo_gr.py`` shape): ``create_blocks`` returns the
Blocks, ``mount_web`` puts it at ``/`` on the API's FastAPI app so ``studio serve`` serves both.
"""

from __future__ import annotations

import os
from pathlib import Path

from studio.api.context import ApiContext
from studio.jobs import plugins
from studio.jobs.errors import JobNotFound
from studio.web.gallery import build_gallery
from studio.web.library_page import build_library_page
from studio.web.queue_panel import build_queue_panel
from studio.web.task_form import TaskForm, build_task_tab

CSS_PATH = Path(__file__).parent / "static" / "studio.css"


def _adapter_names() -> list[str]:
    from studio.lora.files import list_adapters

    try:
        return [a.name for a in list_adapters()]
    except Exception:  # an unreadable adapter folder must not take the form down; the library page shows it
        return []


def _reuse_fn(ctx: ApiContext, forms: list[TaskForm]):
    """Fill the job's task form with the job's spec (seed included: same settings, same output)."""
    import gradio as gr

    def reuse(job_id: str | None):
        if not job_id:
            raise gr.Error("Pick an output first.")
        try:
            job = ctx.queue.get(job_id)
        except JobNotFound:
            raise gr.Error(f"No job {job_id!r}.") from None
        updates: list = [gr.Tabs(selected=job["task"])]
        for form in forms:
            same = form.task == job["task"]
            updates += form.values_for(job["spec"]) if same else [gr.skip()] * len(form.widgets)
        return updates

    return reuse


def create_blocks(ctx: ApiContext):
    import gradio as gr

    tasks = plugins.all_tasks()
    selected = gr.Textbox(label="Selected job id", elem_id="queue-selected", max_lines=1, render=False)
    with gr.Blocks(title="Studio") as demo:
        gr.Markdown("## Studio", elem_id="studio-title")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs(elem_id="tabs") as tabs:
                    forms = []
                    for name, task in sorted(tasks.items()):
                        with gr.Tab(task.title or name, id=name, elem_id=f"tab-{name}"):
                            forms.append(build_task_tab(ctx, task, selected, _adapter_names))
                    if not tasks:
                        with gr.Tab("No tasks", id="none"):
                            gr.Markdown("No task plugins are installed (see `/api/health` for load errors).")
                    gallery = build_gallery(ctx)
                    build_library_page()
            with gr.Column(scale=2):
                build_queue_panel(ctx, selected)
        widgets = [w for form in forms for w in form.widgets]
        gallery.reuse.click(_reuse_fn(ctx, forms), inputs=[gallery.job], outputs=[tabs, *widgets], queue=False)
    return demo


def mount_web(app, ctx: ApiContext) -> None:
    """Mount the web app at ``/`` (API routes registered before it keep precedence)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls from an offline studio
    import gradio as gr

    demo = create_blocks(ctx)
    gr.mount_gradio_app(
        app, demo, path="",
        allowed_paths=[str(ctx.outputs_root), str(ctx.uploads.root)],  # viewers may show outputs and uploads
        blocked_paths=[str(ctx.outputs_root / ".staging")],
        max_file_size=ctx.uploads.limits.max_bytes,
        css=CSS_PATH.read_text(), ssr_mode=False, footer_links=["api"],
    )
