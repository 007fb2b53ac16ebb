"""Reading weights safely: state dicts, checkpoint dicts and safetensors, never unpickling code.

User files are loaded with `torch.load(..., weights_only=True)` (or safetensors), so a checkpoint
cannot execute code. Nor is anything else in it trusted: the metadata of a cnnlab checkpoint is
checked against its schema (`checkpoint_meta`), every tensor must hold the data its shape claims, and
the shapes are compared with the architecture before the network is allocated (see
cnnlab.models.registry), so a small crafted file cannot make cnnlab allocate a huge network.
Downloads go through torch.hub's cache; offline, the error names the file, the cache directory and
how to put the file there.
"""
from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError, brief

_STATE_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net", "weights")
_PREFIXES = ("module.", "_orig_mod.", "net.")


def hub_cache_dir() -> Path:
    """Where downloaded weights live (torch.hub's cache; $TORCH_HOME moves it)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_checkpoint(path: str | Path) -> dict:
    """Load a .pt/.pth/.th/.ckpt file as plain data (tensors, dicts, lists, numbers, strings)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"Weights file '{path}' does not exist; check the path.")
    if path.is_dir():
        raise WeightsError(f"'{path}' is a directory; pass the checkpoint file inside it "
                           f"(e.g. {path}/checkpoints/best.pt).")
    if path.stat().st_size == 0:
        raise WeightsError(f"Weights file '{path}' is empty (0 bytes); it was not written completely.")
    other = _other_framework(path)
    if other:
        raise WeightsError(f"'{path}' is {other}, a whole model rather than a weights file; pass it as "
                           f"--model-file {path} (cnnlab.interop.load_model_file in Python).")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
            return {"state_dict": load_file(str(path))}
        except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
            raise WeightsError(f"Weights file '{path}' is not valid safetensors ({e}).") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(e)
        with path.open("rb") as f:
            head = f.read(2)
        if not (head.startswith(b"\x80") or head == b"PK"):  # neither a pickle nor torch's zip: not PyTorch's
            raise WeightsError(f"Weights file '{path}' is not a PyTorch checkpoint ({detail}); pass a state dict, "
                               "a cnnlab checkpoint or .safetensors (a whole model goes to --model-file).") from None
        raise WeightsError(
            f"Refusing to load '{path}': it holds pickled Python objects besides tensors, and unpickling "
            f"can run code ({detail}); re-save it with torch.save(model.state_dict(), ...) or as .safetensors.") from None
    except Exception as e:  # noqa: BLE001 - whatever the parser trips on (IndexError, KeyError, ...) is a bad file
        raise WeightsError(f"Weights file '{path}' is truncated or corrupt ({brief(e, 160)}); "
                           "re-download or re-save it.") from None
    if isinstance(obj, dict):
        return obj
    raise WeightsError(f"Weights file '{path}' holds a {type(obj).__name__}, not a state dict or checkpoint dict.")


#: whole-model files of other frameworks, by suffix (cnnlab.interop reads them as --model-file)
_OTHER_FRAMEWORKS = {".onnx": "an ONNX model", ".keras": "a Keras model", ".h5": "a Keras (HDF5) model",
                     ".hdf5": "a Keras (HDF5) model", ".pb": "a TensorFlow graph", ".meta": "a TF1 graph definition"}


def _other_framework(path: Path) -> str | None:
    """What another framework's whole-model file is, by its suffix or HDF5 signature; None otherwise."""
    if path.suffix.lower() in _OTHER_FRAMEWORKS:
        return _OTHER_FRAMEWORKS[path.suffix.lower()]
    with path.open("rb") as f:
        return "a Keras (HDF5) model" if f.read(8) == b"\x89HDF\r\n\x1a\n" else None


def _unpickler_detail(e: pickle.UnpicklingError) -> str:
    """The reason torch's weights-only unpickler gives, without its generic advice around it."""
    text = str(e)
    found = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", text, re.S)
    return brief(" ".join((found.group(1) if found else text).split()), 160)


def extract_state_dict(obj: dict, path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: the dict itself, or its 'state_dict'/'model'/... entry; prefixes
    such as 'module.' (DataParallel) and '_orig_mod.' (torch.compile) are stripped."""
    state = obj
    if not _all_tensors(state):
        for key in _STATE_KEYS:
            if isinstance(obj.get(key), dict) and _all_tensors(obj[key]):
                state = obj[key]
                break
        else:
            raise WeightsError(f"'{path}' has no state dict: expected tensors, or a dict with one of "
                               f"{', '.join(_STATE_KEYS)} (found keys: {', '.join(map(str, list(obj)[:8]))}).")
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    for k, t in state.items():
        if not isinstance(k, str):
            raise WeightsError(f"'{path}' has a state dict entry named {k!r}, not a parameter name.")
        if t.numel() and t.numel() * t.element_size() > t.untyped_storage().nbytes():
            raise WeightsError(f"'{path}' holds tensor '{k}' of shape {tuple(t.shape)} with less stored data than "
                               "its shape needs (a crafted file?); re-save it with torch.save(model.state_dict()).")
    return dict(state)


def checkpoint_meta(ckpt: dict, path: str | Path = "<checkpoint>") -> dict | None:
    """The 'cnnlab' metadata of a checkpoint (how to rebuild the model: spec, labels, mean, std), checked
    against its schema; None when the file has none. Anything else is one sentence, never a KeyError."""
    if "cnnlab" not in ckpt:
        return None
    meta = ckpt["cnnlab"]

    def unusable(what: str) -> WeightsError:
        return WeightsError(f"Checkpoint '{path}' has unusable cnnlab metadata ({what}); re-save it with cnnlab, "
                            "or load only its weights with --model NAME.")

    if not isinstance(meta, dict):
        raise unusable(f"a {type(meta).__name__}, not a dict")
    spec = meta.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise unusable("spec.name is not a model name")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) and _plain(v) for k, v in kwargs.items()):
        raise unusable("spec.kwargs is not model arguments: text names with numbers, text, true/false or lists")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise unusable("labels is not a list of class names")
    n = kwargs.get("num_classes")
    if n is not None and n != len(labels):
        raise unusable(f"{len(labels)} labels for num_classes={n}")
    for key in ("mean", "std"):
        v = meta.get(key)
        if v is not None and not (isinstance(v, (list, tuple)) and len(v) in (1, 3) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
            raise unusable(f"{key} is not 1 or 3 finite numbers")
    if meta.get("std") is not None and min(meta["std"]) <= 0:
        raise unusable("std has a value that is not positive")
    return meta


def _plain(v: object) -> bool:
    """A model argument as JSON holds it: a number, text, true/false, null, or a flat list of those."""
    if isinstance(v, (list, tuple)):
        return len(v) <= 4096 and all(_plain(x) and not isinstance(x, (list, tuple)) for x in v)
    return v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v))


def mismatch(own: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor]) -> str | None:
    """How a state dict disagrees with a network's parameter shapes (keys missing, unexpected, other
    shapes), or None when it fits."""
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k])}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:3])})")
    return ", ".join(parts) or None


def not_fitting(source: str, arch: str, why: str) -> WeightsError:
    """The one-sentence error for weights that do not fit an architecture."""
    return WeightsError(f"Weights '{source}' do not fit architecture '{arch}': {why}; pick the matching --model "
                        "(and --num-classes).")


def _all_tensors(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def load_state_into(net: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str) -> None:
    """Load weights strictly; on mismatch say which keys and shapes disagree, in one sentence."""
    own = net.state_dict()
    state = dict(state)
    for k in own:  # checkpoints from before PyTorch 0.4.1 have no BatchNorm counters
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    why = mismatch({k: v.shape for k, v in own.items()}, state)
    if why:
        raise not_fitting(source, arch, why)
    net.load_state_dict(state, strict=True)


def download(url: str, what: str) -> Path:
    """A file from `url` via torch.hub's cache; offline, say where to put the file by hand."""
    cache = hub_cache_dir()
    target = cache / url.rsplit("/", 1)[-1]
    if target.exists() and target.stat().st_size > 0:
        return target
    if os.environ.get("CNNLAB_OFFLINE") == "1":
        raise _offline(what, url, target, "CNNLAB_OFFLINE=1 is set")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=True)
        os.replace(tmp, target)
    except Exception as e:  # noqa: BLE001 - every network failure ends in the same advice
        tmp.unlink(missing_ok=True)
        raise _offline(what, url, target, str(e).splitlines()[0][:120] if str(e) else type(e).__name__) from None
    return target


def _offline(what: str, url: str, target: Path, why: str) -> WeightsError:
    return WeightsError(f"Could not download the {what} weights file '{target.name}' ({why}); with network "
                        f"access it is fetched from {url}, or copy that file to {target} by hand "
                        "(or pass --weights PATH).")
