"""Past outputs with their parameters, and "use these settings again"."""

# no `from __future__ import annotations`: gradio finds the gr.SelectData parameter by its real annotation
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.api.context import ApiContext
from studio.jobs.errors import JobNotFound
from studio.web import jobs_view as view

GALLERY_LIMIT = 200


@dataclass
class Gallery:
    job: Any  # gr.Dropdown with the chosen job's id
    reuse: Any  # gr.Button
    tab: Any  # gr.Tab (refreshes when opened)


def gallery_items(ctx: ApiContext) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]]]:
    """(thumbnails with captions, the job id of each thumbnail, dropdown choices of all outputs)."""
    jobs = ctx.queue.list(status="succeeded", limit=GALLERY_LIMIT)
    items, item_ids, choices = [], [], []
    for job in jobs:
        files = view.result_files(job, ctx.outputs_root)
        thumb = view.first_of(files, "image") or view.first_of(files, "video")
        caption = f"{job['task']} · {view.short(job['id'])} · seed {job['seed']}"
        if thumb:
            items.append((thumb, caption))
            item_ids.append(job["id"])
        choices.append((caption, job["id"]))
    return items, item_ids, choices


def detail(ctx: ApiContext, job_id: str | None):
    """(parameters JSON, data JSON, image, video, audio, mesh, files) of one past job."""
    empty = (None, None, None, None, None, None, None)
    if not job_id:
        return empty
    try:
        job = ctx.queue.get(job_id)
    except JobNotFound:
        return empty
    files = view.result_files(job, ctx.outputs_root)
    params = {"task": job["task"], "seed": job["seed"], "inputs": job["spec"], "job": job["id"],
              "attempt": job["attempt"]}
    present = [f["abs"] for f in files if Path(f["abs"]).is_file()]
    return (params, (job.get("result") or {}).get("data") or None, view.first_of(files, "image"),
            view.first_of(files, "video"), view.first_of(files, "audio"), view.first_of(files, "mesh"), present or None)


def build_gallery(ctx: ApiContext) -> Gallery:
    import gradio as gr

    with gr.Tab("Gallery", id="gallery", elem_id="tab-gallery") as tab:
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm", elem_id="gallery-refresh", scale=0)
            job = gr.Dropdown(label="Output", choices=[], elem_id="gallery-job", scale=3)
            reuse = gr.Button("Use these settings again", variant="primary", elem_id="gallery-reuse", scale=1)
        thumbs = gr.Gallery(label="Outputs", columns=5, height=300, allow_preview=False, elem_id="gallery")
        thumb_ids = gr.State([])
        with gr.Row():
            params = gr.JSON(label="Parameters", elem_id="gallery-params")
            data = gr.JSON(label="Results", elem_id="gallery-data")
        with gr.Row():
            image = gr.Image(label="Image", type="filepath", interactive=False, elem_id="gallery-image")
            video = gr.Video(label="Video", interactive=False, elem_id="gallery-video")
        with gr.Row():
            audio = gr.Audio(label="Audio", type="filepath", interactive=False, elem_id="gallery-audio")
            mesh = gr.Model3D(label="3D", elem_id="gallery-mesh")
        files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="gallery-files")

    def load():
        items, ids, choices = gallery_items(ctx)
        return items, ids, gr.Dropdown(choices=choices)

    def pick(ids, evt: gr.SelectData):
        return ids[evt.index] if isinstance(evt.index, int) and 0 <= evt.index < len(ids) else gr.skip()

    for trigger in (refresh.click, tab.select):
        trigger(load, outputs=[thumbs, thumb_ids, job], queue=False)
    thumbs.select(pick, inputs=[thumb_ids], outputs=[job], queue=False)
    job.change(lambda jid: detail(ctx, jid), inputs=[job],
               outputs=[params, data, image, video, audio, mesh, files], queue=False)
    return Gallery(job=job, reuse=reuse, tab=tab)
