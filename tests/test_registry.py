"""The plugin contract: registry discovery, fault isolation, cancel token, adapter specs."""

import sys
import types
from importlib.metadata import EntryPoint

import pytest

from studio.tasks import registry
from studio.tasks.base import (
    Canceled,
    CancelToken,
    InputError,
    ModelKey,
    RunContext,
    Task,
    TaskInputs,
    TaskResult,
    parse_adapter,
)


class EchoInputs(TaskInputs):
    text: str = "hi"
    adapters: list[str] = []


class EchoTask(Task):
    name = "echo-test"
    Inputs = EchoInputs
    output_kinds = ("text",)
    default_model = "echo-model"

    def load(self, key, device="cpu", dtype="float32"):
        return key

    def run(self, pipeline, inputs, ctx):
        ctx.progress(1.0, "done")
        return TaskResult(data={"text": inputs.text})


@pytest.fixture
def clean_registry():
    registry.reset()
    yield
    registry.reset()


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in eps if e.group == group])


def test_broken_plugin_is_skipped_and_others_load(monkeypatch, clean_registry):
    good = types.ModuleType("studio_fake_good")
    good.EchoTask = EchoTask
    bad = types.ModuleType("studio_fake_bad")  # has no attribute the entry point names
    monkeypatch.setitem(sys.modules, "studio_fake_good", good)
    monkeypatch.setitem(sys.modules, "studio_fake_bad", bad)
    _fake_entry_points(
        monkeypatch,
        [
            EntryPoint("good", "studio_fake_good:EchoTask", registry.ENTRY_POINT_GROUP),
            EntryPoint("bad", "studio_fake_bad:Missing", registry.ENTRY_POINT_GROUP),
            EntryPoint("other", "studio_fake_good:EchoTask", "some.other.group"),
        ],
    )
    monkeypatch.setattr(registry, "BUILTIN", {})
    found = registry.tasks()
    assert "echo-test" in found
    assert "bad" in registry.load_errors()
    with pytest.raises(KeyError, match="unknown task 'bad'.*failed to load"):
        registry.get_task("bad")


def test_broken_builtin_is_isolated(monkeypatch, clean_registry):
    broken = types.ModuleType("studio_fake_pkg.broken")
    monkeypatch.setitem(sys.modules, "studio_fake_pkg", types.ModuleType("studio_fake_pkg"))
    monkeypatch.setitem(sys.modules, "studio_fake_pkg.broken", broken)
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(registry, "BUILTIN", {"broken": "studio_fake_pkg.broken:Nope"})
    _fake_entry_points(monkeypatch, [])
    assert "broken" not in registry.tasks()
    assert "AttributeError" in registry.load_errors()["broken"]


def test_register_in_process(clean_registry):
    registry.register(EchoTask())
    try:
        task = registry.get_task("echo-test")
        inputs = task.validate({"text": "x", "adapters": ["a:0.5", "b"]})
        assert task.cache_key(inputs) == ModelKey("echo-model", (("a", 0.5), ("b", 1.0)))
        with pytest.raises(Exception, match="unknown_field"):
            task.validate({"unknown_field": 1})
    finally:
        registry.unregister("echo-test")


def test_cancel_token_stops_progress(tmp_path):
    seen = []
    ctx = RunContext(seed=3, out_dir=tmp_path, progress_fn=lambda f, m, p: seen.append((f, m)))
    ctx.step(0, 4)
    assert seen == [(0.25, "step 1/4")]
    ctx.cancel.cancel()
    with pytest.raises(Canceled):
        ctx.step(1, 4)
    assert len(seen) == 1


def test_cancel_token_polls_outside_source():
    flag = {"v": False}
    token = CancelToken(poll=lambda: flag["v"])
    token.check()
    flag["v"] = True
    with pytest.raises(Canceled):
        token.check()


def test_seeded_generator_is_reproducible(tmp_path):
    import torch

    a = RunContext(seed=7, out_dir=tmp_path).generator()
    b = RunContext(seed=7, out_dir=tmp_path).generator()
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))


@pytest.mark.parametrize("spec,expected", [("x", ("x", 1.0)), ("x:0.25", ("x", 0.25))])
def test_parse_adapter(spec, expected):
    assert parse_adapter(spec) == expected


@pytest.mark.parametrize("spec", [":0.3", "x:heavy"])
def test_parse_adapter_rejects(spec):
    with pytest.raises(InputError) as err:
        parse_adapter(spec)
    assert err.value.field == "adapters"


def test_get_task_imports_only_the_named_builtin(monkeypatch, clean_registry):
    good = types.ModuleType("studio_fake_lazy_good")
    good.EchoTask = EchoTask
    monkeypatch.setitem(sys.modules, "studio_fake_lazy_good", good)
    imported = []
    real_load = registry._load_target
    monkeypatch.setattr(registry, "_load_target", lambda t: imported.append(t) or real_load(t))
    monkeypatch.setattr(
        registry, "BUILTIN", {"echo-test": "studio_fake_lazy_good:EchoTask", "other": "studio_fake_missing:X"}
    )
    first = registry.get_task("echo-test")
    assert registry.get_task("echo-test") is first  # one instance per process
    assert imported == ["studio_fake_lazy_good:EchoTask"]
