"""How checkpoint contents become files: weights as safetensors-ready tensor dicts, state values as what
``torch.load(weights_only=True)`` reads back (numpy arrays nested in a state value stored as tensors, their
paths listed in the manifest and turned back into arrays on load)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import numpy as np


def _path_str(path: list) -> str:
    return "".join(f"[{p!r}]" for p in path)



def encode_state(value: Any, path: list, np_paths: list, torch, root: str = "state") -> Any:
    """A copy of ``value`` that weights_only loading reads back: numpy arrays become tensors (their paths
    recorded in ``np_paths``), numpy scalars Python numbers; anything unloadable raises TypeError."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.dtype.kind not in "biufc":
            raise TypeError(f"{root}{_path_str(path)}: numpy dtype {value.dtype} cannot be stored; "
                            "use a numeric or bool array")
        if any(not isinstance(p, (str, int)) for p in path):
            raise TypeError(f"{root}{_path_str(path)}: a numpy array under a key that is not str or int")
        np_paths.append(list(path))
        return _tensor_from_numpy(value, torch)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return value
    if isinstance(value, (torch.Size, torch.dtype, torch.device)):
        return value
    if isinstance(value, dict):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for k, v in value.items():
            if not (k is None or isinstance(k, (bool, int, float, str, bytes, tuple))):
                raise TypeError(f"{root}{_path_str(path)}: key {k!r} of type {type(k).__name__} cannot be stored")
            out[k] = encode_state(v, path + [k], np_paths, torch, root)
        return out
    if isinstance(value, list):
        return [encode_state(v, path + [i], np_paths, torch, root) for i, v in enumerate(value)]
    if type(value) is tuple:
        return tuple(encode_state(v, path + [i], np_paths, torch, root) for i, v in enumerate(value))
    if isinstance(value, (set, frozenset)):
        items = [encode_state(v, path + ["<set>"], [], torch, root) for v in value]
        return set(items)
    raise TypeError(
        f"{root}{_path_str(path)}: {type(value).__module__}.{type(value).__qualname__} cannot be stored "
        "(torch.load(weights_only=True) reads back tensors, numpy arrays, numbers, strings, bytes and "
        "dict/list/tuple/set of them); convert it, or put JSON values in metadata")


def _tensor_from_numpy(arr: np.ndarray, torch) -> Any:
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


def _replace_at(obj: Any, path: list, fn) -> Any:
    if not path:
        return fn(obj)
    key, rest = path[0], path[1:]
    if isinstance(obj, tuple):
        items = list(obj)
        items[key] = _replace_at(items[key], rest, fn)
        return tuple(items)
    obj[key] = _replace_at(obj[key], rest, fn)
    return obj


def decode_state(value: Any, np_paths: list) -> Any:
    for path in np_paths:
        value = _replace_at(value, list(path), lambda t: t.cpu().numpy())
    return value


def weights_tensors(name: str, value: Any, torch) -> dict[str, Any]:
    if isinstance(value, torch.nn.Module):
        value = value.state_dict()
    if not isinstance(value, Mapping):
        raise TypeError(f"weights[{name!r}]: expected an nn.Module or a state_dict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for key, t in value.items():
        if not isinstance(key, str):
            raise TypeError(f"weights[{name!r}]: key {key!r} is not a string")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"weights[{name!r}][{key!r}]: {type(t).__name__} is not a tensor "
                            "(safetensors holds tensors only; put other values in state)")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:  # tied or shared weights: safetensors refuses shared storage
            t = t.clone()
        elif t.numel():
            seen.add(ptr)
        out[key] = t
    return out

