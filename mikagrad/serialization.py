"""``save`` and ``load`` for state dicts: ``.npz`` archives that hold no pickles, or the
standard ``.safetensors`` format that PyTorch, JAX, MLX, candle and burn read.

A ``.npz`` archive is what ``np.savez`` writes: one ``.npy`` entry per array, named after its key
path (``state/0/exp_avg``), plus ``__mikagrad__``, a uint8 array of UTF-8 JSON that records
the nesting (dicts keyed by str or int, lists, tuples) and the Python scalars. ``load`` reads
it with ``np.load(allow_pickle=False)``, so loading never runs code; a file that is not such
an archive raises ``SerializationError``, which names the file and what is wrong.

A ``.safetensors`` file (chosen by the path's suffix, or ``format="safetensors"``) is an
8-byte little-endian header length, a JSON header giving each tensor's dtype, shape and byte
range, then the raw little-endian bytes. It holds one flat dict of named arrays, such as a
``state_dict()``; ``load`` tells the two formats apart by their first bytes.

>>> import io, numpy as np
>>> f = io.BytesIO(); save({"w": np.eye(2, dtype=np.float32), "step": 3}, f); _ = f.seek(0)
>>> load(f)
{'w': array([[1., 0.],
       [0., 1.]], dtype=float32), 'step': 3}
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .engine import Value

__all__ = ["MissingFileError", "SerializationError", "load", "save"]

FORMAT = "mikagrad.state"
VERSION = 1
_META = "__mikagrad__"
# Names np.savez cannot take as keywords, besides our own metadata entry.
_RESERVED = {_META, "file", "allow_pickle"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_TAGS = ("dict", "list", "tuple", "array", "scalar")


class SerializationError(ValueError):
    """The file is not a readable mikagrad archive: truncated, corrupt or foreign."""


class MissingFileError(SerializationError, FileNotFoundError):
    """The file to load does not exist (both a SerializationError and a FileNotFoundError)."""


# ---- save --------------------------------------------------------------------------------


def _where(path: tuple) -> str:
    return "/".join(map(str, path)) if path else "(top level)"


def _entry_name(path: tuple, taken: dict) -> str:
    """A readable, unique zip entry name for the array at ``path``."""
    parts = (re.sub(r"[^A-Za-z0-9_.\-]", "_", str(p)) for p in path)
    base = "/".join("_" if p in ("", ".", "..") else p for p in parts) or "_"
    name, n = base, 0
    while name in taken or name in _RESERVED:
        n += 1
        name = f"{base}~{n}"
    return name


def _encode(obj: Any, path: tuple, arrays: dict) -> Any:
    """The JSON tree of ``obj``; arrays go into ``arrays`` and are referenced by name."""
    if isinstance(obj, Value):
        obj = obj.numpy()
    if isinstance(obj, (np.ndarray, np.generic)):
        if obj.dtype.hasobject:
            raise TypeError(
                f"save: the array at key {_where(path)!r} holds Python objects "
                f"(dtype {obj.dtype}); only plain numeric, bool and string arrays can be saved"
            )
        name = _entry_name(path, arrays)
        arrays[name] = np.asarray(obj)
        return {"array" if isinstance(obj, np.ndarray) else "scalar": name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(
                    f"save: dict keys must be str or int, got {type(k).__name__} {k!r} "
                    f"at key {_where(path)!r}"
                )
            items.append([k, _encode(v, path + (k,), arrays)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        tag = "list" if isinstance(obj, list) else "tuple"
        return {tag: [_encode(v, path + (i,), arrays) for i, v in enumerate(obj)]}
    raise TypeError(
        f"save: cannot save an object of type {type(obj).__name__} at key {_where(path)!r}; "
        "a state dict holds arrays, Values, numbers, str, None, and dicts/lists/tuples of them"
    )


def _format(path: Any, format: str | None) -> str:
    if format is None:
        name = getattr(path, "name", path) if hasattr(path, "write") else path
        is_st = isinstance(name, (str, os.PathLike)) and \
            os.fspath(name).endswith(".safetensors")
        return "safetensors" if is_st else "npz"
    if format not in ("npz", "safetensors"):
        raise ValueError(f"save: format must be 'npz' or 'safetensors', got {format!r}")
    return format


def save(obj: Any, path: Any, format: str | None = None) -> None:
    """Writes a state dict (nested dicts, lists and tuples of arrays, Values and Python
    scalars) to ``path``: a str, a ``pathlib.Path`` or a file opened in binary mode.

    A path ending in ``.safetensors`` (or ``format="safetensors"``) gets the safetensors
    format, which holds one flat dict of named arrays (a module's ``state_dict()``); any
    other path gets an ``.npz`` archive, which holds any nesting. Values are stored as arrays
    (``load`` gives numpy arrays back). Another type raises TypeError naming its key, before
    the file is touched. The name is used as given: no suffix is appended.

    >>> f = io.BytesIO(); save({"w": Value([1.0, 2.0]), "step": 3}, f); _ = f.seek(0)
    >>> load(f)
    {'w': array([1., 2.]), 'step': 3}
    """
    import json  # here, not at the top: json and zipfile cost `import mikagrad` 14 ms

    if hasattr(path, "write") and isinstance(path, io.TextIOBase):
        raise TypeError("save: the file must be opened in binary mode ('wb')")
    if _format(path, format) == "safetensors":
        data = _safetensors_bytes(obj)
        if hasattr(path, "write"):
            path.write(data)
            return
        with open(os.fspath(path), "wb") as f:
            f.write(data)
        return
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, (), arrays)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree})
    arrays[_META] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
        return
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


# ---- safetensors ---------------------------------------------------------------------------

# The format's dtype names; numpy has no bfloat16 or float8, so those files are refused.
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
              "BOOL": "?"}
_ST_NAMES = {np.dtype(v).newbyteorder("="): k for k, v in _ST_DTYPES.items()}
# The order ``safetensors`` writes dtypes in (its dtype enum, descending), for identical files.
_ST_ORDER = ("U64", "I64", "F64", "F32", "U32", "I32", "F16", "U16", "I16", "I8", "U8", "BOOL")
# The reference implementation's limit on the header (100 MB): a larger one is corrupt.
_ST_MAX_HEADER = 100_000_000


def _safetensors_bytes(obj: Any) -> bytes:
    """The file for a flat dict of named arrays, as ``safetensors.torch.save_file`` lays it
    out: tensors ordered by dtype then name, the header padded to 8 bytes."""
    import json

    if not isinstance(obj, Mapping):
        raise TypeError(f"save: a .safetensors file holds a dict of named arrays (a "
                        f"state_dict), got {type(obj).__name__}; use .npz for other objects")
    arrays = {}
    for key, v in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"save: .safetensors keys must be str, got {type(key).__name__} "
                            f"{key!r}")
        if key == "__metadata__":
            raise ValueError("save: '__metadata__' is reserved by the safetensors format")
        if isinstance(v, Value):
            v = v.numpy()
        if not isinstance(v, (np.ndarray, np.generic)):
            raise TypeError(f"save: .safetensors holds arrays only; key {key!r} holds "
                            f"{type(v).__name__} (use .npz for nested state and numbers)")
        arr = np.asarray(v)
        name = _ST_NAMES.get(arr.dtype.newbyteorder("="))
        if name is None:
            raise TypeError(f"save: key {key!r} has dtype {arr.dtype}, which .safetensors "
                            f"cannot hold")
        arrays[key] = (name, arr)
    order = sorted(arrays, key=lambda k: (_ST_ORDER.index(arrays[k][0]), k))
    header: dict[str, Any] = {}
    chunks, at = [], 0
    for key in order:
        name, arr = arrays[key]
        raw = np.ascontiguousarray(arr, dtype=np.dtype(_ST_DTYPES[name])).tobytes()
        header[key] = {"dtype": name, "shape": list(arr.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _load_safetensors(data: bytes, name: str) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file's bytes, checked as the reference implementation
    checks them: a JSON object header, known dtypes, and byte ranges that tile the data."""
    import json

    def bad(why: str) -> SerializationError:
        return SerializationError(f"load: {name} is not a valid .safetensors file: {why}")

    if len(data) < 8:
        raise bad(f"it has {len(data)} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _ST_MAX_HEADER:
        raise bad(f"the header length {n} is over the format's limit of {_ST_MAX_HEADER}")
    if 8 + n > len(data):
        raise bad(f"the header length {n} runs past the end of the file ({len(data)} bytes)")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
        return dict(pairs)

    try:
        header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    meta = header.pop("__metadata__", None)
    meta = {} if meta is None else meta
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad("'__metadata__' must map strings to strings")
    body = memoryview(data)[8 + n:]
    spans = []
    for key, entry in header.items():
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
            raise bad(f"tensor {key!r} needs exactly 'dtype', 'shape' and 'data_offsets'")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ST_DTYPES:
            raise bad(f"tensor {key!r} has dtype {dtype!r}, which numpy cannot hold"
                      if isinstance(dtype, str) and dtype in ("BF16", "F8_E4M3", "F8_E5M2")
                      else f"tensor {key!r} has unknown dtype {dtype!r}")
        ints = (isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2
                and all(type(d) is int and d >= 0 for d in shape + offsets))
        if not ints:
            raise bad(f"tensor {key!r} has shape {shape!r} and data_offsets {offsets!r}; "
                      "both must be lists of non-negative ints, the offsets two")
        # Checked in order, as the reference does: a product past int64 is corrupt even if
        # a later dim is 0.
        size = np.dtype(_ST_DTYPES[dtype]).itemsize
        for d in shape:
            size *= d
            if size >= 2**63:
                raise bad(f"tensor {key!r} of shape {tuple(shape)} overflows a 64-bit size")
        if offsets[1] - offsets[0] != size:
            raise bad(f"tensor {key!r} of dtype {dtype} and shape {tuple(shape)} needs {size} "
                      f"bytes, its data_offsets {offsets} give {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], key))
    at = 0
    for begin, end, key in sorted(spans):
        if begin != at:
            raise bad(f"tensor {key!r} starts at byte {begin}, not at {at} where the data "
                      "before it ends (tensors must tile the data without gaps or overlaps)")
        at = end
    if at != len(body):
        raise bad(f"the tensors cover {at} bytes of data but the file holds {len(body)}"
                  + (" (truncated?)" if at > len(body) else ""))
    out = {}
    for key, entry in header.items():
        begin, end = entry["data_offsets"]
        arr = np.frombuffer(body[begin:end], dtype=_ST_DTYPES[entry["dtype"]])
        out[key] = arr.astype(arr.dtype.newbyteorder("="), copy=True).reshape(entry["shape"])
    return out


# ---- load --------------------------------------------------------------------------------


def _describe(head: bytes) -> str:
    """Why a file whose first bytes are ``head`` is not an .npz archive."""
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"[: len(head)]):
        return "it is a single .npy array, not an .npz archive"
    if head[:1] == b"\x80":
        return "it looks like a Python pickle, which mikagrad never loads"
    return (f"it starts with neither the zip signature of an .npz archive nor a .safetensors "
            f"header (it starts with {head!r})")


def _decode(node: Any, npz: Any, name: str) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node

    def bad(why: str) -> SerializationError:
        return SerializationError(f"load: {name} has corrupt mikagrad metadata: {why}")

    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _TAGS:
        raise bad(f"unexpected node {str(node)[:80]}")
    (tag, body), = node.items()
    if tag in ("array", "scalar"):
        if not isinstance(body, str) or body == _META or body not in npz.files:
            raise bad(f"it refers to an array entry {body!r} that the archive lacks")
        arr = _read_entry(npz, body, name)
        if tag == "scalar":
            if arr.ndim != 0:
                raise bad(f"the scalar entry {body!r} has shape {arr.shape}")
            return arr[()]
        return arr
    if not isinstance(body, list):
        raise bad(f"a {tag} node holds {type(body).__name__}, not a list")
    if tag == "dict":
        out = {}
        for item in body:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))):
                raise bad(f"malformed dict item {str(item)[:80]}")
            out[item[0]] = _decode(item[1], npz, name)
        return out
    items = [_decode(v, npz, name) for v in body]
    return items if tag == "list" else tuple(items)


def _corrupt(*more: type[BaseException]) -> tuple[type[BaseException], ...]:
    """``more``, then what zipfile and numpy raise on damaged archives (unsupported or
    garbled headers included). zipfile is imported here, not at the top: it costs
    `import mikagrad` 11 ms."""
    import zipfile

    return (*more, zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
            zlib.error, struct.error)


def _read_entry(npz: Any, entry: str, name: str) -> np.ndarray:
    try:
        return npz[entry]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise SerializationError(
                f"load: {name}: entry {entry!r} holds pickled Python objects, "
                "which mikagrad never loads"
            ) from None
        raise SerializationError(f"load: {name}: cannot read entry {entry!r}: {e}") from None
    except _corrupt(MemoryError, KeyError) as e:
        raise SerializationError(
            f"load: {name} is truncated or corrupt: cannot read entry {entry!r} "
            f"({type(e).__name__}: {e})"
        ) from None


def _load_file(f: Any, name: str) -> Any:
    if isinstance(f, io.TextIOBase):
        raise TypeError(f"load: {name} must be opened in binary mode ('rb')")
    suffix = str(getattr(f, "name", "")).endswith(".safetensors")
    if not getattr(f, "seekable", lambda: True)():
        f = io.BytesIO(f.read())  # a pipe or a response: read through once
    head = f.read(9)
    f.seek(-len(head), os.SEEK_CUR)
    if head[:4] not in _ZIP_MAGIC and (suffix or _is_safetensors(head)):
        return _load_safetensors(f.read(), name)
    return _load_npz(f, name)


def _is_safetensors(head: bytes) -> bool:
    """A safetensors file starts with a header length then '{' (JSON), maybe after spaces."""
    return len(head) == 9 and head[8:9] == b"{" and head[6:8] == b"\0\0"


def _load_npz(f: Any, name: str) -> Any:
    head = f.read(len(_ZIP_MAGIC[0]))
    if head not in _ZIP_MAGIC:
        raise SerializationError(f"load: {name} is not a mikagrad file: {_describe(head)}")
    f.seek(-len(head), os.SEEK_CUR)
    try:
        npz = np.load(f, allow_pickle=False)
    except _corrupt(ValueError) as e:
        raise SerializationError(
            f"load: {name} is truncated or corrupt: not a readable .npz archive "
            f"({type(e).__name__}: {e})"
        ) from None
    with npz:
        if _META not in npz.files:
            shown = ", ".join(repr(k) for k in npz.files[:5]) or "no entries"
            raise SerializationError(
                f"load: {name} is a zip (.npz) archive but not a mikagrad file: it has no "
                f"{_META!r} entry (it holds {shown})"
            )
        raw = _read_entry(npz, _META, name)
        import json

        try:
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise ValueError(f"entry has dtype {raw.dtype} and shape {raw.shape}")
            meta = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT or "tree" not in meta:
                raise ValueError("it does not describe a mikagrad state")
        except ValueError as e:
            raise SerializationError(
                f"load: {name} has corrupt mikagrad metadata: {e}"
            ) from None
        version = meta.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise SerializationError(
                f"load: {name} has format version {version!r}; this mikagrad reads up to "
                f"version {VERSION}"
            )
        return _decode(meta["tree"], npz, name)


def load(path: Any) -> Any:
    """Reads what ``save`` wrote from a str, a ``pathlib.Path`` or a binary file object:
    an ``.npz`` archive, or a ``.safetensors`` file (as a dict of numpy arrays), told apart
    by their first bytes whatever the name.

    Arrays (and saved Values) come back as numpy arrays with their dtype and bits intact.
    A missing file raises MissingFileError; a truncated, corrupt or foreign file (a pickle,
    text, an .npz that mikagrad did not write) raises SerializationError. Nothing is
    unpickled, so loading never executes code.

    >>> load(io.BytesIO(b"not an archive"))
    Traceback (most recent call last):
    mikagrad.serialization.SerializationError: load: ... is not a mikagrad file: ...
    """
    if hasattr(path, "read"):
        return _load_file(path, repr(getattr(path, "name", path)))
    name = repr(os.fspath(path))
    try:
        with open(os.fspath(path), "rb") as f:
            return _load_file(f, name)
    except FileNotFoundError:
        raise MissingFileError(f"load: {name} does not exist") from None
