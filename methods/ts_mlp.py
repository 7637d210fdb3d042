"""``ts-mlp``: Teacher-Student MLPs with forward-backward feature transfer.

Reimplementation of "Looking for Tiny Defects via Forward-Backward Feature Transfer" (Costanzino et al.,
arXiv 2407.04092; IEEE Access 2025 "Learning to Be a Transformer to Pinpoint Anomalies"):

- teacher: a frozen DINOv2 ViT with registers; the outputs of blocks 8 and 12 (1-based), passed through
  the final LayerNorm, patch tokens only;
- input: the image padded to a square by edge replication (centred), resized (bicubic) to ``img_size``,
  ImageNet-normalised;
- students: two per-token MLPs; the *forward* student maps block-8 tokens to block-12 tokens, the
  *backward* student maps block-12 tokens to block-8 tokens; loss = sum of (1 - mean cosine similarity);
  Adam, lr 1e-4, 50 epochs, batches of 4 images, no augmentation, last epoch kept;
- map: per token, the product of the two students' L2 errors between L2-normalised vectors, upsampled
  (bilinear) to the padded square at original size, blurred by five 5x5 and three 7x7 zero-padded box
  filters, cropped to the original ``H x W``; image score = mean of the top 0.1 % map values.

Deviations from the official code, all deliberate: the teacher's features of each training image are
computed once and cached in half precision (the official loop recomputes them every epoch in float32);
each map is upsampled to its own image's padded square (the official code pads each image to its own
square too, but upsamples every map to the square of the category's first test image);
the crop uses the same offsets as the padding (see :mod:`._ts_mlp_model`); pos-embeddings for
``img_size`` != 518 are resampled once by timm at load time rather than interpolated on the fly.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adbench_hr.datasets.base import TrainSample
from adbench_hr.errors import InputError, one_line, warn
from adbench_hr.progress import progress_bar

from ._backbone import BackboneInfo, create_backbone
from ._common import (
    BatchedTorchMethod,
    as_bool,
    as_device,
    as_dict,
    as_float,
    as_int,
    as_int_list,
    as_seed,
    as_text,
    backbone_provenance,
    check_takes_input,
    checkpoint_record,
    concrete_device,
    current_build,
    image_to_tensor,
    module_tensors,
    optional_str,
    prefetch_images,
    rebuild_from_checkpoint,
    resolve_device,
    resolve_with,
    seeded,
    tensors_with_prefix,
    tf32_matmul,
    write_checkpoint,
)
from ._fp8 import convert_linears_to_fp8, fp8_unsupported_reason
from ._ts_mlp_model import (
    FeatureStore,
    MapPostprocessor,
    Preprocessor,
    StudentMLP,
    students_loss,
    token_scores,
    top_fraction_mean,
)
from .base import Prediction
from .registry import register_method

_PAPER: dict[str, Any] = {
    "teacher": "vit_base_patch14_reg4_dinov2.lvd142m",
    "img_size": 1036,  # 74 x 74 tokens
    "layers": [8, 12],
    "epochs": 50,
    "batch_size": 4,
    "lr": 1e-4,
    "blur": [5, 5, 5, 5, 5, 7, 7, 7],
}

#: Published settings (``paper``) and a CPU-friendly variant (``fast``: smaller teacher and input, same
#: schedule and map post-processing). Every key can be overridden.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": _PAPER,
    "fast": {**_PAPER, "teacher": "vit_small_patch14_reg4_dinov2.lvd142m", "img_size": 518},  # 37 x 37 tokens
}

# Options that do not change the trained model and may be overridden when loading a checkpoint.
RUNTIME_OPTIONS = frozenset(
    {
        "device",
        "weights",
        "teacher_precision",
        "student_tf32",
        "feature_batch_size",
        "feature_ram_gib",
        "feature_gpu_fraction",
        "tmp_dir",
        "num_workers",
        "attention",
        "compile",
        "cuda_graph",
    }
)

TEACHER_PRECISIONS = ("auto", "fp32", "bf16", "bf16-weights", "fp8")

# Attention kernels that the ``attention`` option can put first (PyTorch falls back to the others).
# CUDA graphs of the predict path kept at once (one per image shape, least recently used dropped).
_MAX_GRAPHS = 4

_SDPA_BACKENDS = {
    "cudnn": "CUDNN_ATTENTION",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "math": "MATH",
}


# Every option and how it is read (from the preset where the argument is None and the preset has it).
_OPTION_TYPES: dict[str, Any] = {
    "preset": as_text, "weights": as_text, "device": as_device, "seed": as_seed, "teacher": as_text,
    "teacher_kwargs": as_dict, "img_size": as_int, "layers": as_int_list, "epochs": as_int, "batch_size": as_int,
    "lr": as_float, "blur": as_int_list, "top_fraction": as_float, "teacher_precision": as_text,
    "student_tf32": as_bool, "feature_batch_size": as_int, "feature_ram_gib": as_float,
    "feature_gpu_fraction": as_float, "tmp_dir": optional_str, "num_workers": as_int, "attention": as_text,
    "compile": as_bool, "cuda_graph": as_bool,
}


def compiled_batch_size(n: int, feature_batch_size: int) -> int:
    """The batch size a compiled teacher runs ``n`` images as: the next power of two, at most
    ``max(n, feature_batch_size)``."""
    if n < 1:
        raise ValueError(f"a batch holds at least one image, got {n}")
    return max(n, min(1 << (n - 1).bit_length(), feature_batch_size))


@register_method
class TSMLP(BatchedTorchMethod):
    """Teacher-Student MLP anomaly detector (forward-backward feature transfer).

    Parameters
    ----------
    preset : {"auto", "paper", "fast"}
        ``paper``: ViT-B/14 + 4 registers at 1036 px (74 x 74 tokens), as published. ``fast``: ViT-S/14 + 4
        registers at 518 px (37 x 37 tokens), for CPU work. ``auto`` (default): ``paper`` on CUDA, ``fast``
        on CPU; the resolved name is recorded in ``options``. The keyword options below override the preset.
    weights : str
        Teacher weights: ``"pretrained"`` (timm's loader, needs network or a filled HF cache), a path to
        a local weight file (``.safetensors``, ``.pth``, ``.pt``, ``.bin`` or ``.ckpt``), or ``"random"``
        (smoke runs; meaningless maps).
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. ``auto`` and ``cuda`` are pinned
        to the GPU current when the method is made (``device`` then reads ``cuda:N``).
    seed : int
        Seeds the students' initialisation, the epoch shuffling and a random teacher.
    teacher : str, optional
        timm model name of the teacher (a DINOv2-style ViT).
    teacher_kwargs : dict, optional
        Extra ``timm.create_model`` arguments (e.g. ``{"depth": 4, "embed_dim": 48, "num_heads": 2}`` for
        tiny test teachers).
    img_size : int, optional
        Side of the square network input; a multiple of the patch size.
    layers : (int, int), optional
        1-based teacher blocks ``(middle, last)``.
    epochs, batch_size, lr : optional
        Training schedule (batch size counts images). ``epochs=0`` skips training (timing/debug only).
    blur : sequence of int, optional
        Odd box-filter sizes applied in turn to the upsampled map; ``[]`` disables the blur.
    top_fraction : float
        Fraction of the highest map values averaged into the image score (at least one value).
    teacher_precision : {"auto", "fp32", "bf16", "bf16-weights", "fp8"}
        Teacher compute precision; ``auto`` is bf16 autocast on CUDA and fp32 on CPU. ``bf16-weights`` runs a
        bf16 copy of the teacher (weights cast once, LayerNorms in bf16 too) without autocast: faster on a
        GPU, features within ~1 % of autocast's. ``fp8`` is ``bf16-weights`` with the blocks' linear layers
        as e4m3 matrix products (per-channel weight and per-token activation scales; GPUs of compute
        capability >= 8.9, or a CPU); combine it with ``compile`` so that the activation quantisation
        fuses. Students and maps are always float32.
    cuda_graph : bool
        On CUDA, replay everything of predict that runs on the device (pre-processing, teacher, students,
        map, score) from a CUDA graph, for single images; one graph per image shape, captured when a shape
        comes the second time (the last 4 shapes kept; a dropped graph's memory is given back to the GPU).
        Cuts kernel-launch gaps; combines with ``compile``. A shape whose capture fails is reported once and
        predicted eagerly (same maps). Ignored on a CPU.
    student_tf32 : bool
        Allow TF32 tensor-core matmuls for the students on CUDA (faster, ~1e-3 relative error).
    feature_batch_size : int
        Images per teacher forward pass.
    feature_ram_gib : float
        Host-RAM budget of the training feature cache; larger caches spill to a temporary file.
    feature_gpu_fraction : float
        Fraction of free GPU memory the feature cache may use on CUDA (0 keeps it in host memory).
    tmp_dir : str, optional
        Folder for the spilled feature cache (default: the system temp folder; an existing, writable folder).
    num_workers : int
        Threads that decode training images ahead of the teacher.
    attention : {"auto", "cudnn", "flash", "efficient", "math"}
        Preferred scaled-dot-product-attention kernel of the teacher (``auto``: PyTorch's choice). Only
        speed changes (and rounding).
    compile : bool
        ``torch.compile`` the teacher's forward pass (first call compiles; only worth it for long runs).
        Fuses the activation quantisation of ``teacher_precision="fp8"``. Batches run padded to a power of
        two (at most ``feature_batch_size``), so few batch sizes compile.
    """

    name = "ts-mlp"
    # The feature cache holds the same float16 values in RAM, on disk or on the GPU; threads only decode.
    resource_options = frozenset({"num_workers", "tmp_dir", "feature_ram_gib", "feature_gpu_fraction"})
    backbone_option = "teacher"

    def __init__(
        self,
        preset: str = "auto",
        *,
        weights: str | Path = "pretrained",
        device: str = "auto",
        seed: int = 115,
        teacher: str | None = None,
        teacher_kwargs: dict[str, Any] | None = None,
        img_size: int | None = None,
        layers: Sequence[int] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        blur: Sequence[int] | None = None,
        top_fraction: float = 0.001,
        teacher_precision: str = "auto",
        student_tf32: bool = False,
        feature_batch_size: int = 4,
        feature_ram_gib: float = 2.0,
        feature_gpu_fraction: float = 0.5,
        tmp_dir: str | None = None,
        num_workers: int = 4,
        attention: str = "auto",
        compile: bool = False,
        cuda_graph: bool = False,
    ) -> None:
        opts = self.resolve_options({key: value for key, value in locals().items() if key in _OPTION_TYPES})
        self.options = opts
        self._device = concrete_device(opts["device"])
        self.device = str(self._device)
        self._precision = (
            ("bf16" if self._device.type == "cuda" else "fp32")
            if opts["teacher_precision"] == "auto"
            else opts["teacher_precision"]
        )
        if self._precision == "fp8":
            self._check_fp8(self._device)

        # Seed the teacher's initialisation (matters for weights="random") without touching global RNG.
        with seeded(opts["seed"]):
            self._teacher, self._backbone = self._build_teacher(opts, opts["weights"])
        self.pretrained_backbone: bool | None = self._backbone.pretrained

        self.embed_dim = int(self._teacher.embed_dim)
        self.grid = opts["img_size"] // self._patch_size(self._teacher, opts)
        self._prep = Preprocessor(opts["img_size"], self._device)
        self._post = MapPostprocessor(self.grid, opts["blur"], self._device)
        self._teacher_fn: Any = None  # built lazily (torch.compile compiles on first use)
        # Low-precision copy of the teacher for teacher_precision "bf16-weights" and "fp8".
        self._teacher_lowp: torch.nn.Module | None = None
        self._graphs: dict[tuple[int, ...], tuple[Any, ...]] = {}  # CUDA graphs of predict by image shape
        self._shapes_seen: set[tuple[int, ...]] = set()
        self._shapes_without_graph: set[tuple[int, ...]] = set()  # capture failed: predicted eagerly
        self.forward_net: StudentMLP | None = None
        self.backward_net: StudentMLP | None = None
        self.fit_stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Every option as the instance records it: ``preset`` resolved (``auto`` by the device), the
        preset's values where an argument is ``None`` or not given, types coerced; validated.

        ``options`` may omit any argument (its default is taken).
        """

        def fill(args: dict[str, Any]) -> dict[str, Any]:
            preset = args["preset"]
            if preset == "auto":
                # The published setting needs a GPU; on a CPU the fast preset keeps runs to minutes.
                preset = "paper" if resolve_device(str(args["device"])).type == "cuda" else "fast"
            if preset not in PRESETS:
                raise InputError(f"ts-mlp: unknown preset {preset!r} (available: auto, {', '.join(PRESETS)})")
            base = PRESETS[preset]
            filled = {key: base[key] if value is None and key in base else value for key, value in args.items()}
            return {**filled, "preset": preset}

        return resolve_with(cls, options, _OPTION_TYPES, fill)

    @staticmethod
    def _validate(opts: dict[str, Any]) -> None:
        def bad(msg: str) -> InputError:
            return InputError(f"ts-mlp: {msg}")

        # The forward student maps the first layer to the second; the teacher yields them in depth order.
        if len(opts["layers"]) != 2 or not 1 <= opts["layers"][0] < opts["layers"][1]:
            raise bad(f"layers must be two 1-based block numbers, earlier first (middle, last), got {opts['layers']}")
        if opts["img_size"] < 1:
            raise bad(f"img_size must be positive, got {opts['img_size']}")
        if opts["epochs"] < 0 or opts["batch_size"] < 1 or opts["feature_batch_size"] < 1:
            raise bad("epochs must be >= 0, batch_size and feature_batch_size >= 1")
        if not (opts["lr"] > 0 and math.isfinite(opts["lr"])):
            raise bad(f"lr must be positive and finite, got {opts['lr']}")
        if any(k < 1 or k % 2 == 0 for k in opts["blur"]):
            raise bad(f"blur sizes must be odd and positive, got {opts['blur']}")
        if not 0 < opts["top_fraction"] <= 1:
            raise bad(f"top_fraction must be in (0, 1], got {opts['top_fraction']}")
        if opts["teacher_precision"] not in TEACHER_PRECISIONS:
            raise bad(
                f"teacher_precision must be {', '.join(TEACHER_PRECISIONS)}; got {opts['teacher_precision']!r}"
            )
        if opts["attention"] not in ("auto", *_SDPA_BACKENDS):
            raise bad(f"attention must be auto, {', '.join(_SDPA_BACKENDS)}; got {opts['attention']!r}")
        if not opts["feature_ram_gib"] >= 0 or not 0 <= opts["feature_gpu_fraction"] <= 1:  # NaN fails too
            raise bad("feature_ram_gib must be >= 0 and feature_gpu_fraction in [0, 1]")
        if opts["num_workers"] < 0:
            raise bad(f"num_workers must be >= 0, got {opts['num_workers']}")

    @staticmethod
    def _create_teacher(opts: dict[str, Any], weights: str) -> tuple[torch.nn.Module, BackboneInfo]:
        """The teacher of resolved options ``opts``, checked against them (depth, patch size)."""
        kwargs = {"img_size": opts["img_size"], "num_classes": 0, **opts["teacher_kwargs"]}
        try:
            model, info = create_backbone(opts["teacher"], weights, **kwargs)
        except InputError:
            raise
        except Exception as exc:  # unknown timm names, bad kwargs
            # timm's own message rarely names the argument at fault: show the ones the user gave.
            given = f" with teacher_kwargs {json.dumps(opts['teacher_kwargs'])}" if opts["teacher_kwargs"] else ""
            raise InputError(
                f"ts-mlp: cannot create teacher {opts['teacher']!r}{given} ({type(exc).__name__}: {exc})"
            ) from None
        depth = len(model.blocks)
        if max(opts["layers"]) > depth:
            raise InputError(f"ts-mlp: layers {opts['layers']} exceed the teacher's depth {depth}")
        TSMLP._patch_size(model, opts)
        return model, info

    @staticmethod
    def _patch_size(teacher: torch.nn.Module, opts: dict[str, Any]) -> int:
        patch = teacher.patch_embed.patch_size
        patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        if opts["img_size"] % patch:
            raise InputError(f"ts-mlp: img_size {opts['img_size']} is not a multiple of the patch size {patch}")
        return patch

    @classmethod
    def preflight(cls, opts: dict[str, Any]) -> None:
        """:meth:`AnomalyMethod.preflight`, and ``teacher_precision="fp8"`` on a device (or a CPU torch) without
        FP8 matrix products."""
        super().preflight(opts)
        if opts["teacher_precision"] == "fp8":
            cls._check_fp8(concrete_device(opts["device"]))

    @staticmethod
    def _check_fp8(device: torch.device) -> None:
        if reason := fp8_unsupported_reason(device):
            raise InputError(f"ts-mlp: teacher_precision=fp8: {reason}")

    @classmethod
    def _check_architecture(cls, opts: dict[str, Any]) -> torch.nn.Module:
        teacher, _ = cls._create_teacher(opts, "random")
        # teacher_kwargs may build a teacher that does not take the method's input (another img_size or in_chans).
        check_takes_input(teacher, opts["img_size"], f"ts-mlp: teacher {opts['teacher']!r} with teacher_kwargs "
                          f"{json.dumps(opts['teacher_kwargs'])} at img_size {opts['img_size']}",
                          indices=[v - 1 for v in opts["layers"]], output_fmt="NLC")
        return teacher

    def _build_teacher(self, opts: dict[str, Any], weights: str) -> tuple[torch.nn.Module, BackboneInfo]:
        model, info = self._create_teacher(opts, weights)
        self._indices = [v - 1 for v in opts["layers"]]
        # Drop blocks after the last one used and the head; the final norm stays (it is applied to the
        # intermediates).
        model.prune_intermediate_layers(self._indices, prune_norm=False, prune_head=True)
        model.requires_grad_(False).eval()
        return model.to(self._device), info

    def _init_students(self) -> None:
        self._graphs.clear()  # captured graphs read the old students' parameters
        with seeded(self.options["seed"]):
            fwd = StudentMLP(self.embed_dim, self.embed_dim)
            bwd = StudentMLP(self.embed_dim, self.embed_dim)
        self.forward_net = fwd.to(self._device)
        self.backward_net = bwd.to(self._device)

    # ------------------------------------------------------------------ features

    def _upload(self, image: np.ndarray) -> torch.Tensor:
        t = image_to_tensor(image)
        return t.to(self._device) if self._device.type != "cpu" else t

    def _low_precision_teacher(self) -> torch.nn.Module:
        """The bf16 (and, for ``fp8``, FP8-linear) copy of the teacher, built on first use.

        A copy, so that checkpoints keep the float32 weights the hash was taken of.
        """
        if self._teacher_lowp is None:
            teacher = copy.deepcopy(self._teacher).to(torch.bfloat16)
            if self._precision == "fp8":
                # After the bf16 cast: Module.to(dtype) would also cast the float8 buffers.
                convert_linears_to_fp8(teacher.blocks)
            self._teacher_lowp = teacher
        return self._teacher_lowp

    def _teacher_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        teacher = self._teacher
        if self._precision in ("bf16-weights", "fp8"):
            teacher, x = self._low_precision_teacher(), x.to(torch.bfloat16)
        with torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self._precision == "bf16"):
            mid, last = teacher.forward_intermediates(
                x,
                indices=self._indices,
                norm=True,
                output_fmt="NLC",
                intermediates_only=True,
                stop_early=True,
            )
        return mid.float(), last.float()

    def _attention_context(self) -> contextlib.AbstractContextManager[Any]:
        choice = self.options["attention"]
        if choice == "auto":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        first = getattr(SDPBackend, _SDPA_BACKENDS[choice])
        order = [first] + [getattr(SDPBackend, b) for b in _SDPA_BACKENDS.values() if getattr(SDPBackend, b) != first]
        try:
            return sdpa_kernel(order, set_priority=True)
        except TypeError:  # older torch: no priorities, so allow only the chosen kernel
            return sdpa_kernel([first])

    def _teacher_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Middle and last block tokens ``(B, T, D)`` float32 for a normalised batch ``(B, 3, S, S)``.

        Compiled (``compile``), a batch is padded with zero images to a power of two (at most
        ``feature_batch_size``): every batch size is a compilation of its own, and after
        ``torch._dynamo.config.recompile_limit`` (8) of them, shared by every instance in the process, the
        teacher silently ran eagerly for each new size; with ``feature_batch_size`` 16, a fit's last partial
        batch (``n mod 16`` differs between categories) or ``predict_batch`` calls of assorted lengths got
        there. Padded, there are at most ``1 + ceil(log2(feature_batch_size))`` sizes. The images of a
        batch do not interact in the teacher.
        """
        if self._teacher_fn is None:
            if self._precision in ("bf16-weights", "fp8"):
                self._low_precision_teacher()  # built here, outside what torch.compile traces
            fn = self._teacher_forward
            self._teacher_fn = torch.compile(fn, dynamic=False) if self.options["compile"] else fn
        n = int(x.shape[0])
        if self.options["compile"]:
            padded = compiled_batch_size(n, self.options["feature_batch_size"])
            if padded > n:
                x = torch.cat([x, x.new_zeros((padded - n, *x.shape[1:]))])
        with self._attention_context():
            mid, last = self._teacher_fn(x)
        return mid[:n], last[:n]

    # ------------------------------------------------------------------ training

    def fit(self, train_samples: Sequence[TrainSample], progress: bool = True) -> None:
        """Cache the teacher's features of every training image once, then train both students.

        Parameters
        ----------
        train_samples : sequence of TrainSample
            Nominal images (anything with ``load_image()`` returning an RGB ``uint8`` array).
        progress : bool
            Show tqdm progress bars (stderr) for feature extraction and epochs.
        """
        if len(train_samples) == 0:
            raise InputError("ts-mlp: no training images")
        # A fit that fails (an unreadable image, Ctrl-C) leaves the previous students, not half-trained ones.
        previous = (self.forward_net, self.backward_net)
        try:
            self._fit(train_samples, progress)
        except BaseException:
            self.forward_net, self.backward_net = previous
            raise

    def _fit(self, train_samples: Sequence[TrainSample], progress: bool) -> None:
        opts = self.options
        n = len(train_samples)
        self._init_students()
        assert self.forward_net is not None and self.backward_net is not None
        tokens = self.grid * self.grid
        gpu_budget = 0
        if self._device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self._device)
            gpu_budget = int(free * opts["feature_gpu_fraction"])
        t0 = time.perf_counter()
        ram_budget = int(opts["feature_ram_gib"] * 2**30)
        with FeatureStore(n, tokens, self.embed_dim, self._device, gpu_budget, ram_budget, opts["tmp_dir"]) as store:
            self._extract_all(train_samples, store, progress)
            self._synchronize()
            t1 = time.perf_counter()
            losses = self._train(store, n, progress)
            self._synchronize()
            t2 = time.perf_counter()
            location, nbytes = store.location, store.nbytes
        self.fit_stats = {
            "n_train_images": n,
            "feature_seconds": t1 - t0,
            "train_seconds": t2 - t1,
            "total_seconds": t2 - t0,
            "feature_store": location,
            "feature_bytes": nbytes,
            "epoch_losses": losses,
            **current_build(),  # which build fitted: a checkpoint keeps it
        }

    @torch.inference_mode()
    def _extract_all(self, samples: Sequence[Any], store: FeatureStore, progress: bool) -> None:
        bs = self.options["feature_batch_size"]
        images = prefetch_images(samples, self.options["num_workers"])
        bar = progress_bar(total=len(samples), show=progress, desc="ts-mlp: teacher features", unit="img")
        start = 0
        with bar:
            while True:
                chunk = list(itertools.islice(images, bs))
                if not chunk:
                    break
                with self._own_precision():
                    x = torch.cat([self._prep(self._upload(im)) for im in chunk])
                    mid, last = self._teacher_features(x)
                store.put(start, torch.stack([mid, last], dim=1))
                start += len(chunk)
                bar.update(len(chunk))

    def _train(self, store: FeatureStore, n: int, progress: bool) -> list[float]:
        opts = self.options
        fwd, bwd = self.forward_net, self.backward_net
        assert fwd is not None and bwd is not None
        fwd.train()
        bwd.train()
        optimizer = torch.optim.Adam(itertools.chain(fwd.parameters(), bwd.parameters()), lr=opts["lr"])
        generator = torch.Generator().manual_seed(opts["seed"])
        bs = opts["batch_size"]
        n_steps = math.ceil(n / bs)
        index_device = self._device if store.location == "device" else torch.device("cpu")
        losses: list[float] = []
        bar = progress_bar(range(opts["epochs"]), show=progress, desc="ts-mlp: training students", unit="epoch")
        with tf32_matmul(opts["student_tf32"]), self._own_precision():
            for _ in bar:
                perm = torch.randperm(n, generator=generator).to(index_device)
                # Accumulated on the device: one host sync per epoch, not per step.
                total = torch.zeros((), device=self._device)
                for start in range(0, n, bs):
                    feats = store.batch(perm[start : start + bs])
                    loss = students_loss(fwd, bwd, feats[:, 0], feats[:, 1])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.detach()
                epoch_loss = float(total) / n_steps
                if not math.isfinite(epoch_loss):
                    raise RuntimeError(f"ts-mlp: training diverged (epoch loss {epoch_loss})")
                losses.append(epoch_loss)
                bar.set_postfix(loss=f"{epoch_loss:.4f}")
        fwd.eval()
        bwd.eval()
        return losses

    # ------------------------------------------------------------------ inference

    def _check_fitted(self) -> None:
        if self.forward_net is None or self.backward_net is None:
            raise RuntimeError("ts-mlp: call fit() or load a checkpoint before predicting")

    def _device_predict(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Everything of predict that runs on the device, for ``uint8`` ``(H, W, C)`` tensors on it.

        Returns the maps (flattened, row-major) and image scores packed as ``[map_0, score_0, map_1, ...]``
        in one float32 tensor, so that one device-to-host copy fetches them all.
        """
        assert self.forward_net is not None and self.backward_net is not None
        with self._own_precision():
            x = torch.cat([self._prep(t) for t in images])
            mid, last = self._teacher_features(x)
            with tf32_matmul(self.options["student_tf32"]):
                scores = token_scores(self.forward_net, self.backward_net, mid, last)
            packed = []
            for grid, t in zip(scores.reshape(-1, self.grid, self.grid), images):
                amap = self._post(grid, int(t.shape[0]), int(t.shape[1]))
                packed += [amap.reshape(-1), top_fraction_mean(amap, self.options["top_fraction"]).reshape(1)]
            return torch.cat(packed)

    def _own_precision(self) -> torch.autocast:
        """Autocast off for the body: a caller's ``torch.autocast`` (a notebook, a training script) must not
        run the pre-processing, students or maps in bf16/fp16. The teacher sets its own autocast inside.

        Without it, predict under a caller's fp16 autocast returned float16 maps, and under bf16 failed
        (numpy has no bfloat16).
        """
        return torch.autocast(self._device.type, enabled=False)

    def _graphed_device_predict(self, image: torch.Tensor) -> torch.Tensor | None:
        """:meth:`_device_predict` of one host image, replayed from a CUDA graph captured for its shape.

        The returned tensor is the graph's static output, overwritten by the next replay: the caller
        copies it to the host first. ``None`` where the capture failed: the caller predicts eagerly.
        """
        key = tuple(image.shape)
        # Captures and replays run on the current device's streams: make it the method's (cuda:N).
        with torch.cuda.device(self._device):
            entry = self._graphs.pop(key, None)
            if entry is None:
                if len(self._graphs) >= _MAX_GRAPHS:
                    self._evict_graph()
                entry = self._capture_graph(image)
                if entry is None:
                    return None
            self._graphs[key] = entry  # most recently used last
            graph, static_in, static_out, _ = entry
            static_in.copy_(image)
            graph.replay()
        return static_out

    def _evict_graph(self) -> None:
        """Drop the least recently used graph and give its memory back, before the next capture.

        Each graph holds a private memory pool. Dropping the graph only marks the pool freeable: PyTorch's
        caching allocator returns such a pool's memory on ``empty_cache`` or when an allocation would
        otherwise fail, never to other allocations, so every shape past the kept ones left one more pool
        reserved on the GPU. Evicting costs one device synchronisation, next to a capture's five predictions.
        """
        del self._graphs[next(iter(self._graphs))]  # the last reference to the graph and its tensors
        torch.cuda.empty_cache()

    def _capture_graph(self, image: torch.Tensor) -> tuple[Any, ...] | None:
        """Capture :meth:`_device_predict` for ``image``'s shape: ``(graph, input, output, kept tensors)``.

        A capture the driver or an operation refuses is reported once, and the shape is predicted eagerly
        from then on (same maps, only slower) rather than failing every image of it.
        """
        key = tuple(image.shape)
        try:
            static_in = image.to(self._device)
            side = torch.cuda.Stream(self._device)
            side.wait_stream(torch.cuda.current_stream(self._device))
            with torch.cuda.stream(side):  # warm-up outside the capture (allocations, kernel choice, caches)
                for _ in range(3):
                    self._device_predict([static_in])
            torch.cuda.current_stream(self._device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # A capture stream of the method's device: torch.cuda.graph's default one is a class attribute,
            # made on whatever device was current at the first capture in the process, and entering it makes
            # that device current, so a second method on another GPU would capture nothing.
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(self._device)):
                static_out = self._device_predict([static_in])
        except RuntimeError as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            warn(f"ts-mlp: cannot capture a CUDA graph of predict for images of shape {key} "
                 f"({one_line(first_line, 200)}); they are predicted without one")
            self._shapes_without_graph.add(key)  # once per shape: its later images do not try again
            return None
        # The graph reads the post-processing matrices in place: keep them alive even if the
        # post-processor's own cache drops them.
        keep_alive = self._post.matrices(int(image.shape[0]), int(image.shape[1]))
        return graph, static_in, static_out, keep_alive

    def _use_graph(self, tensors: Sequence[torch.Tensor]) -> bool:
        """Replay a CUDA graph for this single image? Only from the second image of a shape on.

        Capturing costs about five predictions, so images whose shape does not recur (a category of mixed
        sizes) run eagerly instead of each paying for a capture.
        """
        if not (self.options["cuda_graph"] and self._device.type == "cuda" and len(tensors) == 1):
            return False
        key = tuple(tensors[0].shape)
        if key in self._graphs:
            return True
        if key in self._shapes_without_graph:
            return False
        seen = key in self._shapes_seen
        self._shapes_seen.add(key)
        return seen

    def _predict_chunk(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        tensors = [image_to_tensor(im) for im in images]
        packed = self._graphed_device_predict(tensors[0]) if self._use_graph(tensors) else None
        if packed is None:
            packed = self._device_predict([t.to(self._device) for t in tensors])
        flat = packed.cpu().numpy()
        preds, offset = [], 0
        for t in tensors:
            h, w = int(t.shape[0]), int(t.shape[1])
            amap = flat[offset : offset + h * w].reshape(h, w)
            preds.append(Prediction(anomaly_map=amap, image_score=float(flat[offset + h * w])))
            offset += h * w + 1
        return preds

    # ------------------------------------------------------------------ provenance and checkpoints

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable record of the model: teacher and its weights hash, options, code, seed."""
        return backbone_provenance(
            self,
            "teacher",
            input_resolution=self.options["img_size"],
            token_grid=[self.grid, self.grid],
            layers=list(self.options["layers"]),
            teacher_precision=self._precision,
            fitted=self.forward_net is not None,
            n_train_images=self.fit_stats.get("n_train_images"),
            final_epoch_loss=(self.fit_stats.get("epoch_losses") or [None])[-1],
        )

    def save(self, path: str | Path, include_teacher: bool | None = None) -> None:
        """Write students (and, for a random teacher, the teacher) plus provenance to a safetensors file.

        Parameters
        ----------
        path : str or Path
            Output file (conventionally ``*.safetensors``); parent folders are created.
        include_teacher : bool, optional
            Embed the teacher's weights. Default: only for ``weights="random"``, since a random teacher
            cannot be rebuilt elsewhere; pretrained or file teachers are reloaded from their source and
            checked against the recorded SHA-256.
        """
        self._check_fitted()
        assert self.forward_net is not None and self.backward_net is not None
        if include_teacher is None:
            include_teacher = not self._backbone.pretrained
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (("forward_net.", self.forward_net), ("backward_net.", self.backward_net)) + (
            (("teacher.", self._teacher),) if include_teacher else ()
        ):
            tensors.update(module_tensors(prefix, module))
        record = checkpoint_record(self, "teacher_embedded", include_teacher)
        write_checkpoint(path, tensors, record)

    @classmethod
    def _load_checkpoint(cls, path: Path, meta: dict[str, Any], **overrides: Any) -> TSMLP:
        method, tensors = rebuild_from_checkpoint(
            cls, path, meta, overrides, RUNTIME_OPTIONS,
            backbone_attr="_teacher", embedded_key="teacher_embedded", what="teacher",
            fitted_with="the students were trained with",
        )
        method._init_students()
        assert method.forward_net is not None and method.backward_net is not None
        for prefix, module in (("forward_net.", method.forward_net), ("backward_net.", method.backward_net)):
            try:
                module.load_state_dict(tensors_with_prefix(tensors, prefix), strict=True)
            except RuntimeError as exc:
                raise InputError(f"student weights do not match the options ({one_line(exc, 200)})", path) from None
            module.eval()
        return method
