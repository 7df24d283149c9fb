"""Models and adapters on disk, with their cards."""

# no `from __future__ import annotations`: gradio finds the gr.SelectData parameter by its real annotation
from studio.api.library import list_adapter_entries, list_models

MODEL_COLUMNS = ["name", "class", "size (MB)"]
ADAPTER_COLUMNS = ["name", "type", "base", "rank", "size (MB)", "dataset", "steps"]


def _mb(n: int) -> float:
    return round(n / 2**20, 2)


def tables():
    import pandas as pd

    models = list_models()
    adapters = list_adapter_entries()
    m = pd.DataFrame([[x["name"], x["class"], _mb(x["size_bytes"])] for x in models], columns=MODEL_COLUMNS)
    a = pd.DataFrame([[x["name"], x["type"], x["base"], x["rank"], _mb(x["size_bytes"]),
                       x["metadata"].get("dataset", ""), x["metadata"].get("steps", "")] for x in adapters],
                     columns=ADAPTER_COLUMNS)
    cards = {("model", x["name"]): x["card"] for x in models} | {("adapter", x["name"]): x["card"] for x in adapters}
    return m, a, [x["name"] for x in models], [x["name"] for x in adapters], cards


def build_library_page() -> None:
    import gradio as gr

    with gr.Tab("Models & adapters", id="library", elem_id="tab-library") as tab:
        refresh = gr.Button("Refresh", size="sm", elem_id="library-refresh")
        gr.Markdown("#### Models (`models/`)")
        models = gr.Dataframe(headers=MODEL_COLUMNS, interactive=False, elem_id="library-models")
        gr.Markdown("#### Adapters (`adapters/`) — use them in a task's *adapters* field as `name:weight`")
        adapters = gr.Dataframe(headers=ADAPTER_COLUMNS, interactive=False, elem_id="library-adapters")
        card = gr.Markdown(elem_id="library-card")
        names = gr.State(([], [], {}))

    def load():
        m, a, model_names, adapter_names, cards = tables()
        return m, a, (model_names, adapter_names, cards)

    def show(state, kind: str, evt: gr.SelectData):
        model_names, adapter_names, cards = state
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        pool = model_names if kind == "model" else adapter_names
        if not 0 <= row < len(pool):
            return gr.skip()
        return cards.get((kind, pool[row])) or f"*{pool[row]} has no card.*"

    def show_model(state, evt: gr.SelectData):
        return show(state, "model", evt)

    def show_adapter(state, evt: gr.SelectData):
        return show(state, "adapter", evt)

    for trigger in (refresh.click, tab.select):
        trigger(load, outputs=[models, adapters, names], queue=False)
    models.select(show_model, inputs=[names], outputs=[card], queue=False)
    adapters.select(show_adapter, inputs=[names], outputs=[card], queue=False)
