"""Registry: listing, creation, unknown names, entry-point plug-ins, option errors."""

from __future__ import annotations

import importlib.metadata
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from adbench_hr.errors import AdbenchWarning, InputError
from adbench_hr.methods import AnomalyMethod, Prediction, create_method, list_methods, register_method
from adbench_hr.methods import registry as registry_mod


class DummyMethod(AnomalyMethod):
    """Constant-map method used to exercise the registry."""

    name = "dummy-plugin"

    def __init__(self, value: float = 0.5) -> None:
        self.options = {"value": value}
        self.device = "cpu"
        self.pretrained_backbone = None

    def fit(self, train_samples, progress: bool = True) -> None:
        pass

    def predict(self, image: np.ndarray) -> Prediction:
        return Prediction(np.full(image.shape[:2], self.options["value"], np.float32), self.options["value"])

    def provenance(self) -> dict:
        return {"method": self.name}

    def save(self, path) -> None:
        raise NotImplementedError


def test_list_contains_builtin() -> None:
    assert "ts-mlp" in list_methods()


def test_create_builtin(tiny) -> None:
    method = create_method("ts-mlp", **tiny())
    assert isinstance(method, AnomalyMethod)
    assert method.name == "ts-mlp"
    assert method.pretrained_backbone is False
    assert method.device == "cpu"


def test_unknown_name_lists_known_ones(private_registry) -> None:
    with pytest.raises(InputError) as info:
        create_method("no-such-method")
    message = str(info.value)
    assert "no-such-method" in message and "ts-mlp" in message
    assert "\n" not in message


def test_unknown_option_and_preset(tiny) -> None:
    with pytest.raises(InputError, match="unknown option"):
        create_method("ts-mlp", **tiny(), frobnicate=3)
    with pytest.raises(InputError, match="unknown preset"):
        create_method("ts-mlp", **tiny(preset="huge"))
    with pytest.raises(InputError, match="layers"):
        create_method("ts-mlp", **tiny(layers=[2, 9]))
    for reversed_or_equal in ([4, 2], [3, 3], [0, 2]):  # the forward student maps the earlier block to the later
        with pytest.raises(InputError, match=r"layers must be .* earlier first"):
            create_method("ts-mlp", **tiny(layers=reversed_or_equal))
    for bad in (float("nan"), -1.0):
        with pytest.raises(InputError, match="feature_ram_gib must be >= 0"):
            create_method("ts-mlp", **tiny(feature_ram_gib=bad))
    with pytest.raises(InputError, match="option 'feature_ram_gib' = inf cannot be recorded"):
        create_method("ts-mlp", **tiny(feature_ram_gib=float("inf")))


def test_a_teacher_that_cannot_be_built_names_the_arguments_given(tiny) -> None:
    # timm's message ("'float' object is not iterable") does not say which argument: the error shows them.
    kwargs = {"depth": 2.5, "embed_dim": 48, "num_heads": 2}
    with pytest.raises(InputError) as error:
        create_method("ts-mlp", **tiny(teacher_kwargs=kwargs))
    assert str(error.value).startswith(
        "ts-mlp: cannot create teacher 'vit_small_patch14_reg4_dinov2.lvd142m' with teacher_kwargs "
        '{"depth": 2.5, "embed_dim": 48, "num_heads": 2} (TypeError: ')
    with pytest.raises(InputError) as error:
        create_method("ts-mlp", **tiny(teacher="no_such_vit", teacher_kwargs={}))
    assert str(error.value).startswith("ts-mlp: cannot create teacher 'no_such_vit' (RuntimeError: Unknown model")


def test_register_decorator_forms(private_registry) -> None:
    @register_method
    class Named(DummyMethod):
        name = "named-one"

    @register_method("custom-name")  # a variant of a registered class, as timm registers model variants
    def factory(**options):
        return Named(**options)

    @register_method
    def my_factory(**options):
        return DummyMethod(**options)

    @register_method("from-class-name")
    class Unnamed(DummyMethod):
        name = ""

    assert {"named-one", "custom-name", "my-factory", "from-class-name"} <= set(list_methods())
    assert isinstance(create_method("named-one"), Named)
    assert create_method("custom-name", value=0.25).options == {"value": 0.25}
    assert Unnamed.name == "from-class-name"  # its checkpoints name a method that can load them
    with pytest.raises(InputError, match="instances named 'dummy-plugin', a name no method is registered under"):
        create_method("my-factory")
    with pytest.raises(ValueError, match="already registered"):
        register_method("named-one")(DummyMethod)


def test_a_callable_without_a_name_needs_one_given(private_registry) -> None:
    import functools

    half = functools.partial(DummyMethod, value=0.5)
    # Before: AttributeError ('functools.partial' object has no attribute '__name__').
    with pytest.raises(ValueError, match=r"cannot register functools\.partial\(.*\): it has no name; give one"):
        register_method(half)
    assert half not in private_registry.values()
    register_method(DummyMethod)  # the class its instances reload as
    register_method("half")(half)
    assert create_method("half").options == {"value": 0.5}


def test_a_method_defined_again_replaces_its_earlier_definition(private_registry) -> None:
    # A notebook cell run twice defines the class again, at the top level of the same module: the last runs.
    cell = """
@register_method
class Rerun(DummyMethod):
    name = "rerun"

    def __init__(self, **options):
        super().__init__(value=VALUE)
"""
    namespaces = [{"__name__": "notebook", "register_method": register_method, "DummyMethod": DummyMethod,
                   "VALUE": value} for value in (0.25, 0.75)]
    for namespace in namespaces:
        exec(cell, namespace)
    first, second = (namespace["Rerun"] for namespace in namespaces)
    assert first is not second and type(create_method("rerun")) is second
    assert create_method("rerun").options == {"value": 0.75}

    def make():  # classes made inside a function share a qualified name without being one definition
        class Made(DummyMethod):
            name = "made"

        return Made

    register_method(make())
    with pytest.raises(ValueError, match="'made' is already registered"):
        register_method(make())
    register_method("by-lambda")(lambda **options: DummyMethod(**options))
    with pytest.raises(ValueError, match="'by-lambda' is already registered"):
        register_method("by-lambda")(lambda **options: DummyMethod(value=0.5))


def test_a_subclass_reloads_as_itself_not_as_its_parent(private_registry) -> None:
    register_method(DummyMethod)

    class Inverted(DummyMethod):  # inherits name "dummy-plugin"
        pass

    register_method("inverted")(Inverted)  # registering gives it the registry name
    assert Inverted.name == "inverted" and DummyMethod.name == "dummy-plugin"
    assert type(create_method("inverted")) is Inverted

    class Sneaky(DummyMethod):
        pass

    @register_method("sneaky")
    def sneaky(**options):  # a factory whose instances would reload as DummyMethod
        return Sneaky(**options)

    with pytest.raises(InputError, match="Sneaky instances named 'dummy-plugin', the name of DummyMethod"):
        create_method("sneaky")


def test_a_checkpoint_named_after_a_factory_loads_through_its_class(private_registry, tmp_path) -> None:
    from plugin_methods import GrayDistance

    from adbench_hr.methods import CheckpointsNotSupported, load_method

    class Variant(GrayDistance):  # not registered: the factory below is, under the name its instances record
        name = "gray-variant"

    @register_method("gray-variant")
    def gray_variant(**options):
        return Variant(**options)

    method = create_method("gray-variant", scale=2.0)  # its checkpoints name a registered method
    method.mean = 3.0
    path = tmp_path / "variant.safetensors"
    method.save(path)
    # Before: both raised AttributeError ('function' object has no attribute '_load_checkpoint').
    loaded = Variant.load(path)
    assert type(loaded) is Variant and loaded.mean == 3.0 and loaded.options == method.options
    with pytest.raises(CheckpointsNotSupported) as error:
        load_method(path)  # the factory does not say which class it builds
    assert error.value.path == path
    assert error.value.problem == ("method 'gray-variant' is registered as a factory, which cannot load checkpoints; "
                                   "load it with its class's load(), or register the class itself under "
                                   "'gray-variant'")


def test_options_a_plugin_does_not_take_or_rejects_are_input_errors(private_registry) -> None:
    register_method(DummyMethod)
    with pytest.raises(InputError, match=r"unknown option\(s\) device, seed \(valid options: value\)"):
        create_method("dummy-plugin", device="cpu", seed=1)
    with pytest.raises(InputError, match="option 'value' = nan cannot be recorded in a result file"):
        create_method("dummy-plugin", value=float("nan"))  # would fail only when the result is written

    @register_method("picky")
    class Picky(DummyMethod):
        def __init__(self, value: float = 0.5) -> None:
            if not 0 <= value <= 1:
                raise ValueError(f"value must be in [0, 1], got {value}")
            super().__init__(value)

    with pytest.raises(InputError, match=r"method 'picky': ValueError: value must be in \[0, 1\], got 2"):
        create_method("picky", value=2)

    @register_method("no-options")
    class NoOptions(DummyMethod):
        def __init__(self) -> None:
            self.device = "cpu"

    with pytest.raises(InputError, match="must set `options`"):
        create_method("no-options")


def _plugin_entry_point(monkeypatch: pytest.MonkeyPatch, name: str) -> importlib.metadata.EntryPoint:
    """An entry point ``name`` for ``DummyMethod`` in a fake plug-in module."""
    module = types.ModuleType(f"fake_adbench_plugin_{name.replace('-', '_')}")
    module.DummyMethod = DummyMethod
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return importlib.metadata.EntryPoint(
        name=name, value=f"{module.__name__}:DummyMethod", group=registry_mod.ENTRY_POINT_GROUP
    )


def test_an_entry_point_named_unlike_its_class_is_refused(monkeypatch: pytest.MonkeyPatch, private_registry) -> None:
    ep = _plugin_entry_point(monkeypatch, "renamed")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    with pytest.raises(InputError, match="set the class attribute `name` to 'renamed'"):
        create_method("renamed")


def test_entry_point_plugin_is_loaded_lazily(monkeypatch: pytest.MonkeyPatch, private_registry) -> None:
    calls = []
    ep = _plugin_entry_point(monkeypatch, "dummy-plugin")

    def fake_entry_points(**kwargs):
        calls.append(kwargs)
        return [ep] if kwargs.get("group") == registry_mod.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert "dummy-plugin" in list_methods()
    assert "dummy-plugin" not in private_registry  # listed, not loaded
    method = create_method("dummy-plugin", value=0.75)
    assert isinstance(method, DummyMethod)
    assert "dummy-plugin" in private_registry
    prediction = method.predict(np.zeros((5, 7, 3), np.uint8))
    assert prediction.anomaly_map.shape == (5, 7)
    assert all(call == {"group": "adbench_hr.methods"} for call in calls)


def test_broken_entry_point_is_an_input_error(monkeypatch: pytest.MonkeyPatch, private_registry) -> None:
    ep = importlib.metadata.EntryPoint(
        name="broken", value="module_that_does_not_exist_xyz:Thing", group=registry_mod.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    with pytest.raises(InputError, match="broken"):
        create_method("broken")


class NotAMethod:
    """A class that does not subclass AnomalyMethod."""

    def __init__(self, **options) -> None:
        self.options = options


@pytest.mark.parametrize("attribute, problem", [
    ("TEXT", "is a str, not an AnomalyMethod subclass or a factory returning one"),
    ("NotAMethod", "is the class NotAMethod, which does not subclass adbench_hr.methods.AnomalyMethod"),
])
def test_an_entry_point_that_is_no_method_is_refused_when_looked_up(
    monkeypatch: pytest.MonkeyPatch, private_registry, attribute: str, problem: str
) -> None:
    # Refused by the lookup that `run` makes before reading the dataset, not when the method is created.
    module = types.ModuleType("fake_adbench_plugin_wrong")
    module.TEXT = "a string"
    module.NotAMethod = NotAMethod
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ep = importlib.metadata.EntryPoint(name="wrong", value=f"{module.__name__}:{attribute}",
                                       group=registry_mod.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    with pytest.raises(InputError) as caught:
        registry_mod.get_method_class("wrong")
    assert str(caught.value) == f"method 'wrong': entry point '{module.__name__}:{attribute}' {problem}"
    assert "wrong" not in private_registry


def test_an_entry_point_naming_a_module_that_registers_the_method_is_loaded(
    monkeypatch: pytest.MonkeyPatch, private_registry, tmp_path: Path
) -> None:
    (tmp_path / "fake_adbench_plugin_module.py").write_text(
        "from adbench_hr.methods import AnomalyMethod, register_method\n\n"
        "@register_method\n"
        "class SelfRegistered(AnomalyMethod):\n"
        "    name = 'self-registered'\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delitem(sys.modules, "fake_adbench_plugin_module", raising=False)
    ep = importlib.metadata.EntryPoint(name="self-registered", value="fake_adbench_plugin_module",
                                       group=registry_mod.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    assert registry_mod.get_method_class("self-registered") is sys.modules["fake_adbench_plugin_module"].SelfRegistered


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, adbench_hr.methods; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_lookup_while_another_thread_imports_the_builtins_waits_for_them(monkeypatch) -> None:
    # The registry marked the built-ins as loaded before importing them: a second thread that looked a method up
    # meanwhile (torch's import takes seconds) found none, "unknown method 'patchcore' (known methods: none)".
    import threading

    class Slow(DummyMethod):
        name = "slow-builtin"

    importing, looked_up = threading.Event(), threading.Event()

    def import_module(module: str, package: str | None = None) -> None:
        importing.set()
        looked_up.wait(timeout=1.0)  # the other thread's lookup returns now, or waits for this import
        register_method(Slow)

    monkeypatch.setattr(registry_mod, "_REGISTRY", {})
    monkeypatch.setattr(registry_mod, "_builtins_loaded", False)
    monkeypatch.setattr(registry_mod, "_BUILTIN_MODULES", (".slow",))
    monkeypatch.setattr(registry_mod, "importlib", types.SimpleNamespace(import_module=import_module,
                                                                         metadata=importlib.metadata))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    found: dict[str, object] = {}

    def look_up(who: str) -> None:
        try:
            found[who] = registry_mod.get_method_class("slow-builtin")
        except InputError as error:
            found[who] = str(error)
        finally:
            if who == "second":
                looked_up.set()

    first = threading.Thread(target=look_up, args=("first",))
    first.start()
    assert importing.wait(timeout=10)
    second = threading.Thread(target=look_up, args=("second",))
    second.start()
    first.join(timeout=10)
    second.join(timeout=10)
    assert found == {"first": Slow, "second": Slow}


class OtherDummy(DummyMethod):
    name = "dup"


def test_two_plugins_of_one_name_are_refused_and_one_installed_twice_is_not(monkeypatch, private_registry) -> None:
    module = types.ModuleType("fake_adbench_plugin_dup")
    module.OtherDummy = OtherDummy
    module.Again = OtherDummy
    monkeypatch.setitem(sys.modules, module.__name__, module)
    group = registry_mod.ENTRY_POINT_GROUP
    first = importlib.metadata.EntryPoint(name="dup", value=f"{module.__name__}:OtherDummy", group=group)
    twin = importlib.metadata.EntryPoint(name="dup", value=f"{module.__name__} : OtherDummy", group=group)
    other = importlib.metadata.EntryPoint(name="dup", value=f"{module.__name__}:Again", group=group)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [first, twin, other])
    with pytest.raises(InputError, match=r"method 'dup' is provided by several plug-ins \(.*:OtherDummy; .*:Again\)"):
        create_method("dup")
    assert "dup" not in private_registry
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [first, twin])  # the same package twice
    assert isinstance(create_method("dup"), OtherDummy)


def test_a_plugin_named_like_a_builtin_is_ignored_with_one_warning(monkeypatch, private_registry) -> None:
    from adbench_hr.methods.patchcore import PatchCore

    ep = _plugin_entry_point(monkeypatch, "patchcore")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    with pytest.warns(AdbenchWarning) as record:  # records every warning, repeats included
        assert registry_mod.get_method_class("patchcore") is PatchCore
        assert registry_mod.get_method_class("patchcore") is PatchCore
    (message,) = [str(w.message) for w in record]
    assert message.startswith("method 'patchcore' is adbench_hr.methods.patchcore.PatchCore; the plug-in entry point")
    assert message.endswith(":DummyMethod) are ignored")


def test_the_package_of_a_plugin_method_is_known_for_result_files(monkeypatch, private_registry) -> None:
    ep = types.SimpleNamespace(name="dummy-plugin", value="gauss_ad.core:DummyMethod", load=lambda: DummyMethod,
                               dist=types.SimpleNamespace(name="gauss-ad", version="1.2.0"))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    assert registry_mod.method_package("dummy-plugin") == {}  # not loaded yet
    create_method("dummy-plugin")
    assert registry_mod.method_package("dummy-plugin") == {"gauss-ad": "1.2.0"}
    assert registry_mod.method_package("patchcore") == {}  # built-in: adbench-hr's own version is recorded


# Options of a random ResNet-18 PatchCore at 64 px (small and quick to build).
SMALL_PATCHCORE = {"weights": "random", "backbone": "resnet18", "input_size": 64, "device": "cpu", "num_workers": 0}


@pytest.mark.parametrize(
    "name, options",
    [
        ("ts-mlp", "tiny"),
        ("ts-mlp", "tiny without preset"),  # auto: fast on a CPU device
        ("ts-mlp", "tiny spelled otherwise"),
        ("patchcore", SMALL_PATCHCORE),
        ("patchcore", {**SMALL_PATCHCORE, "sigma": 4, "coreset_ratio": "0.5", "layers": ["layer2", 3]}),
    ],
)
def test_resolved_options_are_exactly_what_an_instance_records(tiny, name, options) -> None:
    if options == "tiny":
        options = tiny()
    elif options == "tiny without preset":
        options = {key: value for key, value in tiny().items() if key != "preset"}
    elif options == "tiny spelled otherwise":
        options = tiny(epochs=2.0, img_size="70", layers=[2.0, 4], lr=1e-4)
    assert create_method(name, **options).options == registry_mod.resolved_options(name, **options)


def test_two_spellings_of_one_setting_resolve_alike(tiny, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    resolve = registry_mod.resolved_options
    given = resolve("ts-mlp", **tiny())
    # No preset on a CPU is the fast preset; the fast preset's own values given explicitly change nothing.
    assert resolve("ts-mlp", **{k: v for k, v in tiny().items() if k != "preset"}) == given
    assert resolve("ts-mlp", **tiny(epochs=2.0, img_size="70", layers=[2.0, 4], lr=0.0001, batch_size=4)) == given
    assert resolve("ts-mlp", **tiny(blur=[5.0, 5, 5, 5, 5, 7, 7, 7], seed=7.0)) == given
    assert given["preset"] == "fast" and given["epochs"] == 2 and given["lr"] == 1e-4 and given["batch_size"] == 4
    # A setting that differs stays different.
    assert resolve("ts-mlp", **tiny(preset="paper")) != given
    assert resolve("ts-mlp", **tiny(lr=2e-4)) != given
    assert resolve("patchcore", sigma=4) == resolve("patchcore", sigma=4.0) == resolve("patchcore")


def test_resolving_options_builds_no_model_and_refuses_bad_values(tiny, monkeypatch) -> None:
    import timm

    def no_model(*args, **kwargs):
        raise AssertionError("resolving options must not build a model")

    monkeypatch.setattr(timm, "create_model", no_model)
    # Pretrained weights of an unknown model: only building the model would find out.
    assert registry_mod.resolved_options("ts-mlp", teacher="no_such_vit", weights="pretrained")["teacher"] == (
        "no_such_vit"
    )
    with pytest.raises(InputError, match=r"method 'ts-mlp': unknown option\(s\) frobnicate \(valid options: "):
        registry_mod.resolved_options("ts-mlp", frobnicate=3)
    with pytest.raises(InputError, match=r"ts-mlp: layers must be .* earlier first"):
        registry_mod.resolved_options("ts-mlp", **tiny(layers=[4, 2]))
    with pytest.raises(InputError, match=r"ts-mlp: option epochs=1\.5 is not valid"):
        registry_mod.resolved_options("ts-mlp", **tiny(epochs=1.5))
    with pytest.raises(InputError, match=r"patchcore: coreset_ratio must be in \(0, 1\], got 2\.0"):
        registry_mod.resolved_options("patchcore", coreset_ratio=2)


@pytest.mark.parametrize(("name", "option", "problem"), [
    ("patchcore", {"layers": []}, "layers must be a non-empty list of distinct layer names or indices, got []"),
    ("patchcore", {"layers": ["layer2", "layer2"]},
     "layers must be a non-empty list of distinct layer names or indices, got ['layer2', 'layer2']"),
    ("patchcore", {"embed_dim": 0}, "embed_dim and num_neighbors must be >= 1, projection_dim >= 0"),
    ("patchcore", {"projection_dim": -1}, "embed_dim and num_neighbors must be >= 1, projection_dim >= 0"),
    ("patchcore", {"num_neighbors": 0}, "embed_dim and num_neighbors must be >= 1, projection_dim >= 0"),
    ("patchcore", {"num_workers": -1}, "num_workers must be >= 0, got -1"),
    ("ts-mlp", {"img_size": 0}, "img_size must be positive, got 0"),
    ("ts-mlp", {"epochs": -1}, "epochs must be >= 0, batch_size and feature_batch_size >= 1"),
    ("ts-mlp", {"batch_size": 0}, "epochs must be >= 0, batch_size and feature_batch_size >= 1"),
    ("ts-mlp", {"feature_batch_size": 0}, "epochs must be >= 0, batch_size and feature_batch_size >= 1"),
    ("ts-mlp", {"lr": 0}, "lr must be positive and finite, got 0.0"),
    ("ts-mlp", {"lr": math.inf}, "lr must be positive and finite, got inf"),  # "must be positive" would be untrue
])
def test_out_of_range_options_are_refused_naming_the_method_and_option(
    tiny, name: str, option: dict, problem: str
) -> None:
    options = tiny(**option) if name == "ts-mlp" else option
    with pytest.raises(InputError) as info:
        registry_mod.resolved_options(name, **options)
    assert str(info.value) == f"{name}: {problem}"


def test_plugins_resolve_to_their_defaults_and_given_options(private_registry) -> None:
    register_method(DummyMethod)  # inherits AnomalyMethod.resolve_options: the options as given
    assert registry_mod.resolved_options("dummy-plugin") == {"value": 0.5}
    assert registry_mod.resolved_options("dummy-plugin", value=2) == {"value": 2}

    @register_method("factory-plugin")
    def make(scale: float = 1.5, *, mode: str = "max") -> DummyMethod:  # a plain factory function
        return DummyMethod(scale)

    assert registry_mod.resolved_options("factory-plugin", mode="mean") == {"scale": 1.5, "mode": "mean"}

    @register_method("rounding")
    class Rounding(DummyMethod):
        @classmethod
        def resolve_options(cls, options):
            return {"value": round(float(options["value"]), 1)}

    assert registry_mod.resolved_options("rounding", value="0.54") == {"value": 0.5}

    @register_method("broken-resolver")
    class BrokenResolver(DummyMethod):
        @classmethod
        def resolve_options(cls, options):
            if options["value"] < 0:
                raise ValueError("value must not be negative")
            return list(options.items())

    with pytest.raises(InputError, match=r"method 'broken-resolver': ValueError: value must not be negative"):
        registry_mod.resolved_options("broken-resolver", value=-1)
    with pytest.raises(InputError, match="resolve_options returned a list, not a dict"):
        registry_mod.resolved_options("broken-resolver")


def test_a_plugin_default_that_is_not_json_is_resolved_as_it_is(private_registry, tmp_path) -> None:
    @register_method("path-default")
    class PathDefault(DummyMethod):
        def __init__(self, value: float = 0.5, cache: Path = tmp_path, budget: float = math.inf) -> None:
            super().__init__(value)  # records only `value` in its options

    assert registry_mod.resolved_options("path-default") == {"value": 0.5, "cache": tmp_path, "budget": math.inf}
    assert create_method("path-default").options == {"value": 0.5}


def test_resource_options_of_the_builtins_may_be_overridden_when_a_checkpoint_loads() -> None:
    # run passes them to load(): a resumed category runs with the run's values (docs/methods.md).
    from adbench_hr.methods import patchcore, ts_mlp

    assert ts_mlp.TSMLP.resource_options == {"num_workers", "tmp_dir", "feature_ram_gib", "feature_gpu_fraction"}
    assert patchcore.PatchCore.resource_options == {"num_workers", "tmp_dir", "feature_ram_gib"}
    assert ts_mlp.TSMLP.resource_options <= ts_mlp.RUNTIME_OPTIONS
    assert patchcore.PatchCore.resource_options <= patchcore.RUNTIME_OPTIONS


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../outside", "lowercase letters"),  # run's output folder would be OUT/../outside: out of OUT
        ("a/b", "lowercase letters"),
        ("PatchCore", "lowercase letters"),  # one folder with `patchcore` on macOS and Windows
        (" spaced", "lowercase letters"),
        ("trailing.", "lowercase letters"),  # Windows drops the dot
        ("x" * 65, "lowercase letters"),
        ("-dash", "lowercase letters"),  # would read as an option on a command line
        (".hidden", "lowercase letters"),
        ("nul", "device name on Windows"),
        ("con", "device name on Windows"),
        ("prn.txt", "device name on Windows"),
        ("aux", "device name on Windows"),
        ("com1.json", "device name on Windows"),
        ("lpt9", "device name on Windows"),
    ],
)
def test_a_name_that_cannot_be_a_folder_is_refused(name: str, problem: str, private_registry) -> None:
    class Named(DummyMethod):
        pass

    with pytest.raises(ValueError, match=problem):
        register_method(name)(Named)
    assert name not in private_registry


@pytest.mark.parametrize("name", ["x", "my-method", "my_method.v2", "a+b", "x" * 64, "console", "com10"])
def test_names_of_letters_digits_and_separators_are_registered(name: str, private_registry) -> None:
    class Named(DummyMethod):
        pass

    register_method(name)(Named)
    assert private_registry[name] is Named


def test_an_entry_point_whose_name_cannot_be_a_folder_is_refused_before_it_loads(
    monkeypatch: pytest.MonkeyPatch, private_registry
) -> None:
    ep = _plugin_entry_point(monkeypatch, "../evil")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    monkeypatch.setattr(type(ep), "load", lambda self: pytest.fail("the plug-in's code ran"))
    with pytest.raises(InputError, match=r"entry point '\.\./evil' \(.*\) of a plug-in: method name '\.\./evil' must"):
        create_method("../evil")


def test_a_name_typed_in_upper_case_suggests_the_method(private_registry) -> None:
    with pytest.raises(InputError, match=r"unknown method 'TS-MLP' \(known methods: .*\); did you mean 'ts-mlp'\?"):
        create_method("TS-MLP")
    with pytest.raises(InputError) as unknown:  # no method of that name in lower case either: no suggestion
        create_method("NO-SUCH-METHOD")
    assert str(unknown.value).startswith("unknown method 'NO-SUCH-METHOD' (known methods: ")
    assert "did you mean" not in str(unknown.value)


def test_a_checkpoint_path_that_is_no_regular_file_is_named_for_what_it_is(tmp_path) -> None:
    # Before: "checkpoint not found" for all four, although the folder and the pipe exist.
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    pipe = tmp_path / "pipe.safetensors"
    os.mkfifo(pipe)
    link = tmp_path / "link.safetensors"
    link.symlink_to(tmp_path / "gone.safetensors")
    expected = {
        folder: "checkpoint is a folder, not a file",
        pipe: "checkpoint is not a regular file (a device, pipe or socket)",
        link: f"checkpoint not found (a broken symbolic link to {tmp_path / 'gone.safetensors'})",
        tmp_path / "missing.safetensors": "checkpoint not found",
    }
    for path, problem in expected.items():
        with pytest.raises(InputError) as info:
            AnomalyMethod.load(path)
        assert str(info.value) == f"{path}: {problem}"


class GrayLevel(DummyMethod):
    """Maps every pixel to the image's mean gray level: each image's prediction is its own."""

    name = "gray-level"

    def predict(self, image: np.ndarray) -> Prediction:
        level = float(image.mean())
        return Prediction(np.full(image.shape[:2], level, np.float32), level)


def test_predict_batch_of_a_method_without_one_predicts_each_image_in_order() -> None:
    # The base class's predict_batch (for library use) serves every plug-in that defines predict only.
    method = GrayLevel()
    images = [np.full((2, 3, 3), 10, np.uint8), np.full((4, 1, 3), 200, np.uint8), np.full((1, 1, 3), 7, np.uint8)]
    predictions = method.predict_batch(images)
    got = [(p.anomaly_map.shape, p.image_score) for p in predictions]
    assert got == [((2, 3), 10.0), ((4, 1), 200.0), ((1, 1), 7.0)]
    assert method.predict_batch([]) == []


@pytest.mark.parametrize("record", [{}, {"method": None}, {"method": ["ts-mlp"]}])
def test_a_checkpoint_that_does_not_name_its_method_is_one_line(tmp_path, record) -> None:
    import json

    from safetensors.numpy import save_file

    from adbench_hr.methods import CHECKPOINT_FORMAT, CHECKPOINT_METADATA_KEY

    path = tmp_path / "nameless.safetensors"
    save_file({"x": np.zeros(1, np.float32)}, str(path),
              metadata={CHECKPOINT_METADATA_KEY: json.dumps({"format": CHECKPOINT_FORMAT, **record})})
    with pytest.raises(InputError) as info:
        AnomalyMethod.load(path)
    assert str(info.value) == f"{path}: checkpoint does not name its method"


def test_an_empty_name_given_to_register_is_refused_as_empty(private_registry) -> None:
    class Named(DummyMethod):
        pass

    with pytest.raises(ValueError) as info:
        register_method("")(Named)
    assert str(info.value) == f"cannot register {Named!r}: empty method name"
    assert "" not in private_registry


def test_a_broken_plugin_named_like_a_builtin_is_ignored_with_one_warning(monkeypatch, private_registry) -> None:
    # Loading the entry point (to tell whether it is the built-in itself) fails: that is not the built-in either.
    from adbench_hr.methods.patchcore import PatchCore

    ep = importlib.metadata.EntryPoint(name="patchcore", value="module_that_does_not_exist_xyz:PatchCore",
                                       group=registry_mod.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [ep])
    with pytest.warns(AdbenchWarning) as record:
        assert registry_mod.get_method_class("patchcore") is PatchCore
    assert [str(w.message) for w in record] == [
        "method 'patchcore' is adbench_hr.methods.patchcore.PatchCore; the plug-in entry point(s) of that name "
        "(module_that_does_not_exist_xyz:PatchCore) are ignored"
    ]


class Opaque:
    """A factory whose signature Python cannot read, as a compiled (C, pybind11) callable's."""

    __name__ = "opaque"
    __signature__ = "not a signature"  # inspect.signature raises TypeError

    def __call__(self, **options) -> DummyMethod:
        return DummyMethod(**options)


def test_a_factory_without_a_readable_signature_takes_any_option(private_registry) -> None:
    from adbench_hr.methods.registry import accepted_options, option_defaults, resolved_options

    factory = Opaque()
    register_method("dummy-plugin")(DummyMethod)  # the name its instances reload as
    register_method("opaque")(factory)
    assert accepted_options(factory) is None and option_defaults(factory) == {}
    assert resolved_options("opaque", value=0.25) == {"value": 0.25}
    assert create_method("opaque", value=0.25).options == {"value": 0.25}


def test_a_factory_that_returns_no_method_is_one_line(private_registry) -> None:
    @register_method("returns-dict")
    def returns_dict(**options):
        return {"options": options}

    with pytest.raises(InputError) as info:
        create_method("returns-dict")
    assert str(info.value) == "method 'returns-dict' did not produce an AnomalyMethod (got dict)"
