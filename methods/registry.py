"""Explicit, timm-style registry of anomaly detection methods.

Built-in methods register themselves with :func:`register_method` when their module is imported; the
registry imports the built-in modules on first use, so ``import adbench_hr.methods`` stays cheap (no
torch). Third-party packages plug in through the entry-point group ``adbench_hr.methods``::

    [project.entry-points."adbench_hr.methods"]
    my-method = "my_package.module:MyMethod"   # a class or a factory returning an AnomalyMethod

Entry points are loaded lazily, the first time an unknown name is looked up (and, to warn that it is
ignored, when one shares a built-in's name).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

from adbench_hr.errors import InputError, warn

from .base import AnomalyMethod, check_json_options

ENTRY_POINT_GROUP = "adbench_hr.methods"
# Modules (relative to this package) whose import registers the built-in methods.
_BUILTIN_MODULES = (".ts_mlp", ".patchcore")

_REGISTRY: dict[str, Callable[..., AnomalyMethod]] = {}
_builtins_loaded = False  # set once every built-in module was imported (or failed to import)
_builtins_loading = False  # the thread that holds _builtins_lock is importing them
# Held while the built-in modules are imported: another thread that looks a method up meanwhile waits for them
# instead of finding an empty registry ("unknown method 'patchcore' (known methods: none)"). Reentrant, for a
# lookup from the imports themselves.
_builtins_lock = threading.RLock()
# Why a built-in module could not be imported (a broken install: torch, timm or torchvision missing or failing
# to load), by module; the "unknown method" error says it instead of only listing what did load.
_BUILTIN_FAILURES: dict[str, str] = {}

F = TypeVar("F", bound=Callable[..., Any])

# A method's name is a folder of `run`'s output (``OUT/<method>/<dataset>``), a checkpoint's record and a
# leaderboard label: one path component on every file system. Lowercase, so that two names cannot be one
# folder on macOS and Windows; ending in a letter or digit (Windows drops a trailing dot); not a device name
# that Windows reserves (``con``, ``nul.json`` ...).
_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?")
_WINDOWS_DEVICES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")


def method_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a method (see ``_NAME_PATTERN``), else ``None``."""
    if not _NAME_PATTERN.fullmatch(name):
        return (f"method name {name!r} must be 1-64 lowercase letters, digits and '-', '_', '.', '+', starting "
                "and ending with a letter or digit (it names a folder of run's output)")
    if _WINDOWS_DEVICES.fullmatch(name):
        return f"method name {name!r} is a device name on Windows, where it cannot name a folder"
    return None


@overload
def register_method(obj: F, /) -> F: ...
@overload
def register_method(obj: str | None = None, /) -> Callable[[F], F]: ...
def register_method(obj: Any = None, /) -> Any:
    """Register a method class or factory under a name.

    Use as ``@register_method`` (the name is the class attribute ``name``, or, for a function or a class
    without one, its ``__name__`` with ``_`` replaced by ``-``) or as ``@register_method("my-name")``.

    Parameters
    ----------
    obj : class, callable or str, optional
        The class/factory to register, or the name to register the decorated object under.

    Returns
    -------
    The decorated object unchanged (or a decorator when called with a name).

    Raises
    ------
    ValueError
        For a name registered to another object, a name that cannot be a method's (:func:`method_name_problem`),
        or none to register under (an empty one; a callable without ``__name__``, such as a
        ``functools.partial``, given without one). The same class or function defined again (a notebook cell
        run twice, a module reloaded) replaces its earlier definition.
    """

    def decorate(target: F, name: str | None) -> F:
        if name is None:
            name = getattr(target, "name", None) if isinstance(target, type) else None
            if not name:
                # A callable without a __name__ (functools.partial, an instance with __call__) has no name to use.
                name = getattr(target, "__name__", "").replace("_", "-")
                if not name:
                    raise ValueError(f'cannot register {target!r}: it has no name; give one, register_method("name")')
        if not isinstance(name, str) or not name:
            raise ValueError(f"cannot register {target!r}: empty method name")
        if problem := method_name_problem(name):
            raise ValueError(f"cannot register {target!r}: {problem}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not target and not _redefinition(existing, target):
            raise ValueError(f"method {name!r} is already registered ({existing!r})")
        if isinstance(target, type) and not target.__dict__.get("name"):
            # Checkpoints record the instances' name, which must lead back here: a class that does not set
            # its own (empty, or inherited from a registered parent) takes the registry name.
            target.name = name
        _REGISTRY[name] = target
        return target

    if obj is None or isinstance(obj, str):
        return lambda target: decorate(target, obj)
    return decorate(obj, None)


def _redefinition(existing: Any, target: Any) -> bool:
    """Whether ``target`` is ``existing`` defined again (a notebook cell run twice, a module reloaded): the
    same module and qualified name, at a module's top level. It then replaces the old definition instead of
    clashing with it. Lambdas and objects made inside functions share qualified names without being one
    definition: they still clash."""
    def where(obj: Any) -> tuple[Any, Any]:
        return getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)

    qualname = where(target)[1]
    return where(existing) == where(target) and isinstance(qualname, str) and "<" not in qualname


def _load_builtins() -> None:
    global _builtins_loaded, _builtins_loading
    if _builtins_loaded:
        return
    with _builtins_lock:
        if _builtins_loaded or _builtins_loading:  # loaded meanwhile by another thread, or a lookup from the imports
            return
        _builtins_loading = True
        try:
            for module in _BUILTIN_MODULES:
                try:
                    importlib.import_module(module, __package__)
                except (ImportError, OSError) as exc:  # OSError: a shared library of torch that fails to load
                    _BUILTIN_FAILURES[module] = f"{type(exc).__name__}: {exc}"
        finally:
            _builtins_loaded, _builtins_loading = True, False


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    # Looked up through the module attribute on every call so tests can monkeypatch it.
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def list_methods() -> list[str]:
    """Names of all available methods: built-in, registered, and advertised by entry points (not loaded).

    Returns
    -------
    list of str
        Sorted method names.
    """
    _load_builtins()
    names = set(_REGISTRY)
    names.update(ep.name for ep in _entry_points())
    return sorted(names)


def get_method_class(name: str) -> Callable[..., AnomalyMethod]:
    """Return the class or factory registered under ``name``, loading entry points if needed.

    Raises
    ------
    InputError
        If no method of that name exists; the message lists the known ones.
    """
    _load_builtins()
    candidates = _entry_points_named(name)
    if name in _REGISTRY:
        target = _REGISTRY[name]
        _warn_shadowed(name, [ep for ep in candidates if not _loads_to(ep, target)])
        return target
    if len(candidates) > 1:
        raise InputError(
            f"method {name!r} is provided by several plug-ins ({'; '.join(map(_origin, candidates))}): "
            "uninstall all but one"
        )
    if candidates and (problem := method_name_problem(name)):  # before the plug-in's code runs
        raise InputError(f"entry point {name!r} ({_origin(candidates[0])}) of a plug-in: {problem}")
    for ep in candidates:
        try:
            target = ep.load()
        except Exception as exc:  # a broken plug-in must not crash with a traceback
            raise InputError(
                f"method {name!r}: cannot load entry point {ep.value!r} ({type(exc).__name__}: {exc})"
            ) from None
        if name not in _REGISTRY:  # loading the module may already have registered it
            # Refused here, before `run` reads or generates the dataset: found only when the method is created,
            # a string or a module would stop the run late, as an option error ("'str' object is not callable").
            if isinstance(target, type) and not issubclass(target, AnomalyMethod):
                raise InputError(f"method {name!r}: entry point {ep.value!r} is the class {target.__qualname__}, "
                                 "which does not subclass adbench_hr.methods.AnomalyMethod")
            if not callable(target):
                raise InputError(f"method {name!r}: entry point {ep.value!r} is a {type(target).__name__}, not an "
                                 "AnomalyMethod subclass or a factory returning one")
            register_method(name)(target)
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _PACKAGES[name] = (dist.name, dist.version)
        return _REGISTRY[name]
    known = ", ".join(list_methods()) or "none"
    if _BUILTIN_FAILURES:
        failure = next(iter(_BUILTIN_FAILURES.values()))
        raise InputError(
            f"unknown method {name!r} (known methods: {known}): the built-in methods could not be imported "
            f"({failure}); reinstall adbench-hr with its dependencies (torch, torchvision, timm)"
        )
    hint = f"; did you mean {name.lower()!r}?" if name.lower() in list_methods() else ""
    raise InputError(f"unknown method {name!r} (known methods: {known}){hint}")


def _entry_points_named(name: str) -> list[importlib.metadata.EntryPoint]:
    """The group's entry points called ``name``, one per target (a package found twice on the path lists
    its entry points twice)."""
    unique: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in _entry_points():
        if ep.name == name:
            unique.setdefault(ep.value.replace(" ", ""), ep)
    return list(unique.values())


def _origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value} from {dist.name} {dist.version}" if dist is not None else ep.value


def _loads_to(ep: importlib.metadata.EntryPoint, target: Any) -> bool:
    try:
        return ep.load() is target
    except Exception:  # a module that fails to import, or registers a taken name: not this target
        return False


_warned_shadowed: set[str] = set()


def _warn_shadowed(name: str, ignored: list[importlib.metadata.EntryPoint]) -> None:
    """Say once that entry points named like a registered method (a built-in) are not what runs."""
    if not ignored or name in _warned_shadowed:
        return
    _warned_shadowed.add(name)
    target = _REGISTRY[name]
    warn(f"method {name!r} is {target.__module__}.{target.__qualname__}; the plug-in entry point(s) of that name "
         f"({'; '.join(map(_origin, ignored))}) are ignored")


# Plug-in methods loaded from entry points: name -> (distribution, version), recorded in result files.
_PACKAGES: dict[str, tuple[str, str]] = {}


def method_package(name: str) -> dict[str, str]:
    """``{distribution: version}`` of the plug-in package a method was loaded from; empty for built-ins and
    methods registered in code (the caller records adbench-hr's own version)."""
    return dict([_PACKAGES[name]]) if name in _PACKAGES else {}


_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _parameters(factory: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """A method class's or factory's parameters; ``None`` when it has no signature."""
    try:
        return list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return None


def accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """Names of the options a method class or factory takes; ``None`` when it takes any (``**kwargs``) or
    has no signature."""
    parameters = _parameters(factory)
    if parameters is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in _KEYWORD}


def option_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    """Default values of a method class's or factory's keyword options (empty when unknown)."""
    return {p.name: p.default for p in _parameters(factory) or () if p.kind in _KEYWORD and p.default is not p.empty}


def names_option(factory: Callable[..., Any], option: str) -> bool:
    """Whether a method class or factory names ``option`` among its parameters (``**kwargs`` does not count)."""
    return any(p.name == option and p.kind in _KEYWORD for p in _parameters(factory) or ())


def check_options(
    name: str, factory: Callable[..., Any], options: Iterable[str], path: str | Path | None = None
) -> None:
    """Raise an :class:`InputError` naming the options ``factory`` does not take and listing those it does.

    Parameters
    ----------
    name : str
        Method name, for the message.
    factory : callable
        The method's class or factory; its keyword parameters are the valid options (any name is valid
        when it takes ``**kwargs``).
    options : iterable of str
        Option names to check.
    path : str or Path, optional
        The file the options come from (a checkpoint), named in the message.
    """
    accepted = accepted_options(factory)
    unknown = sorted(set(options) - accepted) if accepted is not None else []
    if unknown:
        valid = ", ".join(sorted(accepted or ())) or "none"
        raise InputError(f"method {name!r}: unknown option(s) {', '.join(unknown)} (valid options: {valid})", path)


@contextmanager
def _option_value_errors(name: str) -> Iterator[None]:
    """A plug-in's complaint about an option value (``ValueError``, ``TypeError``) as a one-line
    :class:`InputError` naming the method."""
    try:
        yield
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InputError(f"method {name!r}: {type(exc).__name__}: {exc}") from None


def resolved_options(name: str, **options: Any) -> dict[str, Any]:
    """The ``options`` method ``name`` would record if created with ``options``, without creating it.

    The method's defaults fill what is not given, then its ``resolve_options`` (see
    :meth:`AnomalyMethod.resolve_options`), where it has one, resolves presets and coerces types, so that
    two spellings of one setting give one dict.

    Raises
    ------
    InputError
        For an unknown name or option, or an option value the method rejects.
    """
    factory = get_method_class(name)
    check_options(name, factory, options)
    merged = {**option_defaults(factory), **options}
    resolve = getattr(factory, "resolve_options", None)
    if resolve is None:  # a plain factory function
        return merged
    with _option_value_errors(name):
        resolved = resolve(merged)
    if not isinstance(resolved, dict):
        raise InputError(f"method {name!r}: resolve_options returned a {type(resolved).__name__}, not a dict")
    # Not checked as strict JSON: only the instance's own `options` go into result files (create_method
    # checks them); a signature default such as a Path is hashed into the run key as its text.
    return resolved


def create_method(name: str, **options: Any) -> AnomalyMethod:
    """Create a method by name.

    Parameters
    ----------
    name : str
        Registered method name, e.g. ``"ts-mlp"``.
    **options
        Passed to the method's class or factory (e.g. ``preset``, ``weights``, ``device``, ``seed``).

    Returns
    -------
    AnomalyMethod
        The new, unfitted method.

    Raises
    ------
    InputError
        For an unknown name, an option the factory does not take, an option value it rejects (its
        ``InputError``, ``ValueError`` or ``TypeError``), or an instance whose checkpoints could not be
        loaded back (its ``name`` leads to no registered method).
    """
    factory = get_method_class(name)
    check_options(name, factory, options)
    with _option_value_errors(name):
        method = factory(**options)
    if not isinstance(method, AnomalyMethod):
        raise InputError(f"method {name!r} did not produce an AnomalyMethod (got {type(method).__name__})")
    if not isinstance(getattr(method, "options", None), dict):
        raise InputError(f"method {name!r}: its instances must set `options`, a dict of their settings")
    check_json_options(name, method.options)  # they go into every result file
    pretrained = getattr(method, "pretrained_backbone", None)
    if pretrained is not None and not isinstance(pretrained, bool):
        raise InputError(
            f"method {name!r}: pretrained_backbone must be True, False or None (got {pretrained!r} of type "
            f"{type(pretrained).__name__})"
        )
    _check_reloadable(name, method)
    return method


def _check_reloadable(name: str, method: AnomalyMethod) -> None:
    """Refuse instances whose checkpoints would not load back as their own class.

    A checkpoint records ``method.name``; loading looks that name up. A factory may build a registered class
    under another name (timm-style variants), but the name must lead to a method, and to this very class
    where it leads to a class (a subclass inheriting its parent's ``name`` would reload as the parent).
    """
    if method.name == name:
        return
    cls = type(method)
    try:
        target = get_method_class(method.name)
    except InputError:
        raise InputError(
            f"method {name!r} creates instances named {method.name!r}, a name no method is registered "
            f"under, so their checkpoints could not be loaded; set the class attribute `name` to {name!r}"
        ) from None
    if isinstance(target, type) and target is not cls:
        raise InputError(
            f"method {name!r} creates {cls.__name__} instances named {method.name!r}, the name of "
            f"{target.__name__}: their checkpoints would load as {target.__name__}; give {cls.__name__} a "
            "`name` of its own"
        )
