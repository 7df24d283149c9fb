"""One tab per task, its form generated from the task's input schema; submit goes to the queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import ValidationError

from studio.api.context import ApiContext
from studio.api.fields import FieldSpec, field_specs
from studio.api.uploads import UploadRejected
from studio.tasks.base import InputError, Task
from studio.web.widgets import make_widget, to_spec_value, to_widget_value


@dataclass
class TaskForm:
    task: str
    specs: list[FieldSpec]
    widgets: list[Any]  # gradio components, same order as specs

    def values_for(self, spec_dict: dict[str, Any]) -> list[Any]:
        """Widget values that show a job's spec ("use these settings again")."""
        return [to_widget_value(s, spec_dict.get(s.name)) for s in self.specs]


def describe_error(exc: Exception) -> str:
    """One toast line per problem, each naming its field."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'inputs'}: {e['msg']}"
                         for e in exc.errors(include_url=False))
    if isinstance(exc, InputError):
        return f"{exc.field}: {exc.message}"
    if isinstance(exc, UploadRejected):
        return exc.message
    return str(exc)


def _converted(spec: FieldSpec, value: Any, ctx: ApiContext) -> Any:
    try:
        return to_spec_value(spec, value, ctx.uploads)
    except UploadRejected as exc:  # name the form field, not the upload's internal one
        raise InputError(spec.name, exc.message) from None


def submit_fn(ctx: ApiContext, form: TaskForm) -> Callable:
    """The click handler: widgets → spec → ``JobQueue.submit`` (validation errors become toasts)."""
    import gradio as gr

    def submit(priority, *values):
        try:
            raw = {}
            for spec, value in zip(form.specs, values):
                converted = _converted(spec, value, ctx)
                if converted is not None:
                    raw[spec.name] = converted
            job = ctx.queue.submit(form.task, raw, priority=int(priority or 0))
        except (ValidationError, InputError, UploadRejected, ValueError) as exc:
            raise gr.Error(describe_error(exc), title="Invalid input") from None
        position = ctx.queue.position(job["id"])
        note = f"Queued `{job['id'][:8]}` (seed {job['seed']}, position {position})."
        return note, job["id"]

    return submit


def build_task_tab(ctx: ApiContext, task: Task, selected_job, adapters: Callable[[], list[str]]) -> TaskForm:
    """The tab's content (call inside ``gr.Tab``); ``selected_job`` receives the new job's id."""
    import gradio as gr

    specs = field_specs(task.json_schema())
    if task.description:
        gr.Markdown(task.description, elem_id=f"task-{task.name}-description")
    widgets = [make_widget(spec, f"task-{task.name}-{spec.name}", adapters) for spec in specs]
    with gr.Row():
        priority = gr.Number(value=0, precision=0, label="Priority (higher runs first)", minimum=-1000, maximum=1000,
                             elem_id=f"task-{task.name}-priority", scale=1)
        button = gr.Button("Generate", variant="primary", elem_id=f"task-{task.name}-submit", scale=2)
    note = gr.Markdown(elem_id=f"task-{task.name}-note")
    form = TaskForm(task.name, specs, widgets)
    button.click(submit_fn(ctx, form), inputs=[priority, *widgets], outputs=[note, selected_job],
                 show_progress="minimal")
    return form
