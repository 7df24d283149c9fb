"""The web app (gradio Blocks), mounted by ``studio.api.app.create_app`` at ``/``.

The front-end's Python lives here, inside the package; the top-level ``web/`` folder holds only
static assets (CSS). Every screen reads state from the job table through ``JobQueue``, so
closing the browser tab changes nothing and reopening it shows every job.
"""
