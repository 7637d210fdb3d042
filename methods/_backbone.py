"""Creating timm backbones from one ``weights`` option, shared by every method with a backbone.

``weights`` is one of:

- ``"pretrained"``: timm's own pretrained loading (``timm.create_model(name, pretrained=True)``), which
  needs internet access or a filled Hugging Face cache;
- a path to a local ``.safetensors``, ``.pth``, ``.pt``, ``.bin`` or ``.ckpt`` file: a state dict, possibly wrapped
  in ``{"state_dict": ...}``, ``{"model": ...}`` or similar, in timm's or the original (e.g. DINOv2 hub)
  key layout; a DINOv2 in Hugging Face transformers' layout or as DINOv2's training code saves it is renamed
  into the release layout first (``_dinov2_layouts``; transformers' other models are not converted);
  position embeddings are resampled to the requested ``img_size`` by timm's checkpoint filter; a file that does
  not fit is refused with what does not fit and the files that do;
- ``"random"``: random initialisation, for smoke runs only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from adbench_hr.errors import InputError, SharedSetting, one_line
from adbench_hr.fileio import refuse_empty_file

from ._dinov2_layouts import to_release_layout

WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
# One shard of a sharded Hugging Face checkpoint (model-00001-of-00002.safetensors, pytorch_model-00001-of-00003.bin):
# each holds some of the tensors, listed in a *.index.json beside them.
_SHARD_NAME = re.compile(r".+-(\d{5})-of-(\d{5})\.[^.]+")


def _shard_of(name: str) -> tuple[int, int] | None:
    """``(N, M)`` for the name of shard N of M > 1 of a sharded checkpoint, else ``None``."""
    match = _SHARD_NAME.fullmatch(name)
    return (int(match[1]), int(match[2])) if match and int(match[2]) > 1 else None


_SHARDED = ("a sharded checkpoint, whose files each hold some of the tensors, which is not read: save the model as "
            "one file (save_pretrained(..., max_shard_size=\"100GB\"), or torch.save(model.state_dict(), path))")
# DINOv2's training code saves model_<iteration>.rank_<N>.pth: each GPU's FSDP local state (flat parameter shards),
# not the network; its eval/<iteration>/teacher_checkpoint.pth holds the teacher.
_FSDP_RANK_FILE = re.compile(r".+\.rank_(\d+)\.pth")
# Wrapper keys seen in the wild around a model's state dict, tried in this order.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "teacher", "net")


@dataclass(frozen=True)
class BackboneInfo:
    """Where a backbone's weights come from.

    Attributes
    ----------
    model_name : str
        The timm model name.
    weights : str
        ``"pretrained"``, ``"random"`` or the absolute path of the weight file.
    sha256 : str
        ``"random"``, the SHA-256 of the weight file, or (for ``"pretrained"``) the SHA-256 of the loaded
        state dict (see :func:`state_dict_sha256`).
    hash_kind : str
        ``"random"``, ``"file"`` or ``"state_dict"``: what ``sha256`` was computed over.
    pretrained : bool
        ``False`` only for random weights.
    """

    model_name: str
    weights: str
    sha256: str
    hash_kind: str
    pretrained: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable view."""
        return {
            "model_name": self.model_name,
            "weights": self.weights,
            "sha256": self.sha256,
            "hash_kind": self.hash_kind,
            "pretrained": self.pretrained,
        }


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict: names, dtypes, shapes and raw bytes, in key order."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # View as bytes so every dtype (bf16 included) hashes its exact storage.
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local weight file, unwrapping common containers.

    Parameters
    ----------
    path : str or Path
        ``.safetensors`` (read with safetensors) or a torch pickle (read with ``weights_only=True``).

    Returns
    -------
    dict
        Tensor state dict, with a leading ``module.`` (DataParallel) prefix removed.

    Raises
    ------
    InputError
        Naming the file, if it is missing, cannot be read (damaged, a pickled model rather than tensors) or
        holds no state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("weight file not found", path)
    refuse_empty_file(path, "weight file")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                # torch warns about an unusual pickle protocol before it fails: that one warning only, so that
                # another thread's warnings meanwhile still show.
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(
            "cannot read weight file: not a file torch.save wrote, or it holds objects other than tensors (a "
            "pickled model); save it with torch.save(model.state_dict(), path) or as safetensors",
            path,
        ) from None
    except Exception as exc:  # corrupt or foreign files raise many exception types
        raise InputError(f"cannot read weight file ({type(exc).__name__}: {one_line(exc, 200)})", path) from None
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not obj:
        raise InputError("weight file does not contain a state dict", path)
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError("weight file does not contain any tensors", path)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _weight_sources(cfg: dict[str, Any]) -> str:
    """Where the weights of a timm pretrained tag (its ``pretrained_cfg``) can be downloaded, for error messages:
    timm's hub file and the original release timm converts from (``""`` when the configuration names neither)."""
    sources = []
    if cfg.get("hf_hub_id"):
        sources.append(f"{cfg.get('hf_hub_filename') or 'model.safetensors'} of huggingface.co/{cfg['hf_hub_id']}")
    if cfg.get("url") and not cfg.get("custom_load"):  # custom_load: a format (.npz) only timm's loader reads
        sources.append(str(cfg["url"]))
    return f"; files that fit it: {' or '.join(sources)}" if sources else ""


def _foreign_layout(state: dict[str, torch.Tensor], model: nn.Module) -> str | None:
    """What a state dict is, when it is recognisably a layout that no conversion turns into ``model``'s."""
    keys = set(state)

    def transformers_names(names: set[str]) -> bool:
        return any(k.startswith("encoder.layer.") or ".encoder.layer." in k for k in names) and any(
            k.startswith("embeddings.") or ".embeddings." in k for k in names
        )

    if transformers_names(keys) and not transformers_names(set(model.state_dict())):
        return ("a Hugging Face transformers checkpoint of a ViT other than DINOv2 (embeddings.*, encoder.layer.* "
                "keys without layer scale), which is not converted")
    # A DINOv2 without registers given to one with: timm's filter would fail on the position embeddings with a
    # message about reshaping that names neither.
    registers = getattr(model, "reg_token", None)
    file_registers = next((state[k] for k in ("reg_token", "register_tokens") if k in state), None)
    if isinstance(registers, torch.Tensor) and "cls_token" in keys and file_registers is None:
        return (f"a ViT without register tokens (e.g. a DINOv2 without registers), but the model has "
                f"{registers.shape[1]}")
    # The other way round, timm's filter fails the same way ("shape '[1, -1, 384]' is invalid ...").
    if registers is None and isinstance(getattr(model, "cls_token", None), torch.Tensor) and file_registers is not None:
        count = file_registers.shape[1] if file_registers.ndim == 3 else "some"
        return f"a ViT with {count} register tokens (e.g. a DINOv2 with registers), but the model has none"
    return None


def _fitting_state(model: nn.Module, path: Path, model_name: str) -> dict[str, torch.Tensor]:
    """The state dict of weight file ``path``, converted to ``model``'s layout and checked to fit it key by key
    and shape by shape (``model`` may be on torch's ``meta`` device: only its shapes are read)."""
    state = to_release_layout(read_state_dict(path))
    cfg = getattr(model, "pretrained_cfg", None) or {}
    sources = _weight_sources(cfg)
    foreign = _foreign_layout(state, model)
    if foreign is not None:
        raise InputError(f"weights do not match {model_name}: the file is {foreign}{sources}", path)
    # timm's per-architecture filter converts foreign layouts (e.g. DINOv2 hub checkpoints) and resamples
    # position embeddings to the model's img_size.
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception as exc:
            raise InputError(
                f"weights do not fit {model_name} ({type(exc).__name__}: {one_line(exc, 200)}){sources}", path
            ) from None
    own = model.state_dict()
    # A classification head in the file is irrelevant for a feature extractor built with num_classes=0.
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("head.", "fc_norm."))}
    # A classifier the model keeps (PatchCore prunes it after loading) is never run either: a file fine-tuned to
    # other classes, or saved without its classifier, holds the same features. The model keeps its own.
    classifier = str(cfg.get("classifier") or "")
    if classifier:
        for key in own:
            if key.startswith(f"{classifier}.") and (key not in state or state[key].shape != own[key].shape):
                state[key] = own[key]
    # BatchNorm's batch counter is no weight (it only counts training steps; eval ignores it) and files written
    # before PyTorch 0.4.1 lack it: the model keeps its own, as torch's own loader does for such files.
    for key in own:
        if key.rsplit(".", 1)[-1] == "num_batches_tracked" and key not in state:
            state[key] = own[key]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        if mismatched:  # the first one's shapes tell a ViT-S from a ViT-B, a ResNet-50 from a WideResNet-50-2
            first = mismatched[0]
            parts[-1] += (f" ({first}: {tuple(state[first].shape)} in the file, {tuple(own[first].shape)} in the "
                          "model)")
        raise InputError(f"weights do not match {model_name} ({'; '.join(parts)}){sources}", path)
    return state


def _load_local_weights(model: nn.Module, path: Path, model_name: str) -> None:
    model.load_state_dict(_fitting_state(model, path, model_name), strict=True)


def check_weights_fit(model: nn.Module, weights: str | Path, model_name: str) -> None:
    """Refuse a weight file that does not fit ``model`` (built without weights, e.g. on torch's ``meta``
    device), with the message loading it would give; nothing for ``"pretrained"`` and ``"random"``.

    Meant for preflight: a wrong file is then reported before the dataset is read or generated rather than
    when the method is created. The file is read (a second time, later, when it is loaded).
    """
    path = check_weight_source(weights)
    if path is not None:
        _fitting_state(model, path, model_name)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connection (a quick check, no request sent)."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


# The hub client's logger level and offline switch are the process's: blocks of :func:`_quiet_hub` that overlap in
# threads (two methods created at once) share them, the first to enter applying and the last to end restoring
# each (each restoring what it had found left the process offline and the hub's log silenced for good).
_HUB_LOG_QUIET = SharedSetting()
_HUB_OFFLINE = SharedSetting()  # entered only by the blocks that ask for offline mode


@contextlib.contextmanager
def _quiet_hub(offline: bool) -> Iterator[None]:
    """Silence the hub's retry warnings; when ``offline``, read only the local cache.

    Without a network the hub client retries each file with back-off for about a minute and logs every
    retry; offline mode answers from the cache (or fails) at once, so the user gets one clear line. Both
    settings are restored afterwards, by the last of the blocks overlapping in threads to end.
    """
    import huggingface_hub.constants as hub_constants

    logger = logging.getLogger("huggingface_hub")

    def quiet() -> Callable[[], None]:
        level = logger.level
        logger.setLevel(logging.ERROR)
        return lambda: logger.setLevel(level)

    def go_offline() -> Callable[[], None]:
        saved = hub_constants.HF_HUB_OFFLINE
        hub_constants.HF_HUB_OFFLINE = True
        return lambda: setattr(hub_constants, "HF_HUB_OFFLINE", saved)

    offline_mode = _HUB_OFFLINE.applied(go_offline) if offline else contextlib.nullcontext()
    with _HUB_LOG_QUIET.applied(quiet), offline_mode:
        yield


def check_weight_source(weights: str | Path) -> Path | None:
    """The weight file ``weights`` names (``None`` for ``"pretrained"`` and ``"random"``).

    Raises
    ------
    InputError
        If it names no file (or a folder: the message names the weight files in it).
    """
    if str(weights) in ("pretrained", "random"):
        return None
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", str(weights)):
        raise InputError(f"weights {weights} is a URL: download the file and pass its path (adbench-hr downloads "
                         "only through --weights pretrained)")
    path = Path(weights).expanduser()
    if path.is_dir():  # a downloaded model's folder (a Hugging Face snapshot, say) rather than its file
        try:
            held = sorted(p.name for p in path.iterdir() if p.name.lower().endswith(WEIGHT_FILE_SUFFIXES)
                          and p.is_file())
        except OSError:
            held = []
        if any(_shard_of(name) for name in held):
            raise InputError(f"weights name a folder, not a weight file; it holds {_SHARDED}", path)
        hint = f"; it holds {', '.join(held[:3])}{' ...' if len(held) > 3 else ''}: pass one" if held else ""
        raise InputError(f"weights name a folder, not a weight file{hint}", path)
    if not path.is_file():
        raise InputError(
            "weight file not found (weights must be 'pretrained', 'random' or a path to a "
            f"{'/'.join(WEIGHT_FILE_SUFFIXES)} file)",
            path,
        )
    if shard := _shard_of(path.name):
        raise InputError(f"the file is shard {shard[0]} of {shard[1]} of {_SHARDED}", path)
    if rank := _FSDP_RANK_FILE.fullmatch(path.name):
        raise InputError(f"the file is GPU {rank[1]}'s part of a training checkpoint (FSDP's local state, as DINOv2's "
                         "training code saves it), not a model: pass eval/<iteration>/teacher_checkpoint.pth of the "
                         "same training", path)
    return path


_HUB_UNREACHABLE = "the Hugging Face hub is unreachable and no cached copy was found"


def _pretrained_failure(model_name: str, reason: str) -> InputError:
    return InputError(
        f"could not load pretrained weights for {model_name} ({reason}); "
        f"pass --weights PATH (a local {'/'.join(WEIGHT_FILE_SUFFIXES)} file) or --weights random (smoke "
        "run, meaningless maps)"
    )


# Where timm looks for a model's weights in a Hugging Face repository without a file named in its config.
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                     "open_clip_pytorch_model.bin")


def check_pretrained_source(model_name: str) -> None:
    """Refuse ``--weights pretrained`` at once when timm could load the weights from nowhere: the Hugging Face
    hub unreachable and no copy in its cache. Anything else (a reachable hub, a cached copy, a model whose
    weights come from elsewhere, an unknown name) is left to :func:`create_backbone`.

    Raises
    ------
    InputError
        With :func:`create_backbone`'s message for the same failure.
    """
    if _hub_cache_state(model_name) is not False or _hub_reachable():
        return
    raise _pretrained_failure(model_name, _HUB_UNREACHABLE)


def _hub_cache_state(model_name: str) -> bool | None:
    """Whether the hub client's cache holds a copy of ``model_name``'s pretrained weights; ``None`` where timm
    would not fetch them from the Hugging Face hub (or the name is unknown)."""
    import timm.models
    from huggingface_hub import try_to_load_from_cache

    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
    except Exception:  # an unknown or malformed name: creating the model reports it
        return None
    if cfg is None or not cfg.hf_hub_id or cfg.file or cfg.state_dict or os.environ.get("TIMM_USE_OLD_CACHE"):
        return None
    names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
    try:
        return any(isinstance(try_to_load_from_cache(cfg.hf_hub_id, name), str) for name in names)
    except Exception:  # an unreadable cache: nothing known about a copy
        return None


def _name_refused_by_timm(model_name: str) -> bool:
    """Whether timm refuses ``model_name`` itself: an unknown architecture, or a pretrained tag it does not have
    (a hub or local-folder name, ``hf-hub:...``, is a repository's, not refused here)."""
    from timm.models import get_pretrained_cfg, is_model, parse_model_name

    source, name = parse_model_name(model_name)
    if source:
        return False
    try:
        get_pretrained_cfg(name)
    except Exception:  # an invalid pretrained tag
        return True
    return not is_model(name)


def create_backbone(model_name: str, weights: str = "pretrained", **kwargs: Any) -> tuple[nn.Module, BackboneInfo]:
    """Create a timm model with weights from one of three sources.

    Parameters
    ----------
    model_name : str
        timm model name, optionally with a pretrained tag (``"vit_base_patch14_reg4_dinov2.lvd142m"``).
    weights : str
        ``"pretrained"``, ``"random"`` or a path to a local weight file.
    **kwargs
        Passed to ``timm.create_model`` (e.g. ``img_size``, ``num_classes=0``, ``depth``).

    Returns
    -------
    model : torch.nn.Module
        The model in eval mode, on the CPU.
    info : BackboneInfo
        Provenance of the weights.

    Raises
    ------
    InputError
        If pretrained loading fails (e.g. no network), the weight file is missing or does not match.
    """
    import timm

    if weights == "random":
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        info = BackboneInfo(model_name, "random", "random", "random", pretrained=False)
    elif weights == "pretrained":
        reachable = _hub_reachable()
        try:
            with _quiet_hub(offline=not reachable):
                model = timm.create_model(model_name, pretrained=True, **kwargs)
        except Exception as exc:  # network, hub and cache errors come in many types
            reason = f"{type(exc).__name__}: {one_line(exc, 200)}"
            # A cached copy that fails to load (damaged, not fitting the options) is not missing; a name timm refuses
            # fails before any download, and its own message says why.
            if not reachable and not _name_refused_by_timm(model_name):
                cached = _hub_cache_state(model_name)
                reason = (_HUB_UNREACHABLE if not cached else
                          f"the Hugging Face hub is unreachable and the cached copy did not load: {reason}")
            raise _pretrained_failure(model_name, reason) from None
        info = BackboneInfo(model_name, "pretrained", state_dict_sha256(model), "state_dict", pretrained=True)
    else:
        path = check_weight_source(weights)
        assert path is not None
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        _load_local_weights(model, path, model_name)
        info = BackboneInfo(model_name, str(path.resolve()), file_sha256(path), "file", pretrained=True)
    model.eval()
    return model, info
