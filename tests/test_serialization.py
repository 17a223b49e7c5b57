"""save/load: exact round trips, and a clear SerializationError for every bad file."""

import io
import json
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

import mikagrad as mg
from mikagrad.serialization import MissingFileError, SerializationError, load, save


def assert_same(a, b):
    """Equal structure and types, and arrays equal in dtype, shape and every bit."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes()
    else:
        assert a == b


def round_trip(obj, tmp_path):
    path = tmp_path / "state.npz"
    save(obj, path)
    return load(path)


def optimizer_state():
    rng = np.random.default_rng(0)
    return {
        "state": {
            0: {"step": 3, "exp_avg": rng.standard_normal((2, 3)).astype(np.float32),
                "exp_avg_sq": rng.random((2, 3)).astype(np.float32)},
            1: {"step": 3, "momentum_buffer": None},
        },
        "param_groups": [{
            "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
            "amsgrad": False, "nesterov": True, "params": [0, 1], "name": "default",
        }],
    }


# ---- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bitwise_exact(dtype, tmp_path):
    rng = np.random.default_rng(1)
    weird = np.array([0.1, -0.0, np.inf, -np.inf, np.nan, 1e-310, np.finfo(dtype).max,
                      np.finfo(dtype).tiny], dtype=dtype)
    sd = {
        "layer.weight": rng.standard_normal((4, 3)).astype(dtype),
        "layer.bias": rng.standard_normal(3).astype(dtype),
        "weird": weird,
        "empty": np.zeros((0, 5), dtype=dtype),
        "scalar_array": np.array(2.5, dtype=dtype),
    }
    assert_same(round_trip(sd, tmp_path), sd)


def test_round_trip_keeps_other_dtypes_and_layouts(tmp_path):
    sd = {
        "int64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "uint8": np.arange(256, dtype=np.uint8),
        "bool": np.array([True, False]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10.0)[::3],
        "strings": np.array(["a", "bc"]),
    }
    out = round_trip(sd, tmp_path)
    for k, v in sd.items():
        np.testing.assert_array_equal(out[k], v)
        assert out[k].dtype == v.dtype


def test_nested_optimizer_state_round_trips(tmp_path):
    sd = optimizer_state()
    out = round_trip(sd, tmp_path)
    assert_same(out, sd)
    assert list(out["state"]) == [0, 1]  # int keys stay ints


def test_python_and_numpy_scalars_round_trip(tmp_path):
    sd = {"int": 7, "big": 2**80, "neg": -3, "float": 0.1, "third": 1 / 3, "negzero": -0.0,
          "inf": float("inf"), "bool": True, "none": None, "str": "héllo \"x\"/y",
          "np_f32": np.float32(1.1), "np_i64": np.int64(-5), "np_bool": np.bool_(True),
          "tuple": (1, 2.0, "three"), "empty": {}, "empty_list": []}
    assert_same(round_trip(sd, tmp_path), sd)


def test_nan_scalar_round_trips(tmp_path):
    assert np.isnan(round_trip({"x": float("nan")}, tmp_path)["x"])


def test_values_are_saved_as_arrays(tmp_path):
    w = mg.Value(np.arange(6, dtype=np.float32).reshape(2, 3))
    out = round_trip({"w": w, "b": mg.Value(0.5)}, tmp_path)
    assert isinstance(out["w"], np.ndarray) and out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"], w.numpy())
    assert out["b"].tolist() == 0.5


def test_tricky_keys_round_trip(tmp_path):
    # Keys that collide once flattened, or clash with np.savez's own argument names.
    sd = {"a/b": np.ones(1), "a": {"b": np.zeros(1)}, "": np.full(1, 2.0), "file": np.ones(2),
          "allow_pickle": np.ones(3), "__mikagrad__": np.ones(4), "x\x00y": np.ones(5),
          "/abs/../path": np.ones(6), 5: "int key", "ü": np.ones(7)}
    assert_same(round_trip(sd, tmp_path), sd)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as npz:
        names = npz.files
    assert len(names) == 10 and not any(".." in n.split("/") or n.startswith("/") for n in names)


def test_the_archive_is_a_plain_npz(tmp_path):
    path = tmp_path / "m.npz"
    save({"fc": {"weight": np.eye(2)}}, path)
    with np.load(path, allow_pickle=False) as npz:
        assert "fc/weight" in npz.files
        assert npz["__mikagrad__"].dtype == np.uint8
        meta = json.loads(npz["__mikagrad__"].tobytes().decode("utf-8"))
    assert meta["format"] == "mikagrad.state"


def test_path_kinds_and_file_objects(tmp_path):
    sd = {"w": np.arange(3.0)}
    save(sd, str(tmp_path / "a.pt"))  # no .npz appended to the name given
    assert (tmp_path / "a.pt").exists() and not (tmp_path / "a.pt.npz").exists()
    assert_same(load(str(tmp_path / "a.pt")), sd)
    save(sd, pathlib.Path(tmp_path / "b"))
    assert_same(load(pathlib.Path(tmp_path / "b")), sd)
    with open(tmp_path / "c", "wb") as f:
        save(sd, f)
    with open(tmp_path / "c", "rb") as f:
        assert_same(load(f), sd)
    buf = io.BytesIO()
    save(sd, buf)
    buf.seek(0)
    assert_same(load(buf), sd)


def test_text_mode_files_are_refused(tmp_path):
    with open(tmp_path / "t", "w") as f, pytest.raises(TypeError, match="binary mode"):
        save({"w": np.ones(1)}, f)
    save({"w": np.ones(1)}, tmp_path / "t")
    with open(tmp_path / "t") as f, pytest.raises(TypeError, match="binary mode"):
        load(f)


def test_loaded_arrays_are_independent_and_writable(tmp_path):
    a = np.arange(4.0)
    out = round_trip({"a": a}, tmp_path)
    out["a"][0] = 100.0
    assert a[0] == 0.0


def test_a_module_like_state_gives_identical_outputs(tmp_path):
    rng = np.random.default_rng(0)
    W = mg.Value(rng.standard_normal((3, 2)))
    b = mg.Value(rng.standard_normal(2))
    x = mg.Value(rng.standard_normal((5, 3)), requires_grad=False)
    out = round_trip({"W": W, "b": b}, tmp_path)
    W2, b2 = mg.Value(out["W"]), mg.Value(out["b"])
    assert ((x @ W2 + b2).numpy().tobytes()) == ((x @ W + b).numpy().tobytes())


# ---- unsupported objects on save ----------------------------------------------------------


@pytest.mark.parametrize("bad, key", [
    ({"opt": {"state": {0: {"fn": lambda: 0}}}}, "opt/state/0/fn"),
    ({"s": {1, 2}}, "s"),
    ({"c": 1 + 2j}, "c"),
    ({"b": b"bytes"}, "b"),
    ({"o": np.array([object()], dtype=object)}, "o"),
    ({"l": [1, [2, object()]]}, "l/1/1"),
])
def test_saving_an_unsupported_type_names_the_key(bad, key, tmp_path):
    with pytest.raises(TypeError, match=f"'{key}'"):
        save(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_dict_keys_are_refused(tmp_path):
    with pytest.raises(TypeError, match="keys must be str or int"):
        save({"a": {(1, 2): np.ones(1)}}, tmp_path / "x")


def test_a_failed_save_leaves_an_existing_file_alone(tmp_path):
    path = tmp_path / "m"
    save({"w": np.ones(2)}, path)
    with pytest.raises(TypeError):
        save({"w": object()}, path)
    assert_same(load(path), {"w": np.ones(2)})


# ---- bad files on load --------------------------------------------------------------------


def saved_bytes():
    buf = io.BytesIO()
    save(optimizer_state() | {"w": np.arange(1000.0)}, buf)
    return buf.getvalue()


def write(tmp_path, data, name="bad"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(SerializationError, match="nope.npz.*does not exist"):
        load(path)
    with pytest.raises(FileNotFoundError):  # MissingFileError is also a FileNotFoundError
        load(path)
    assert issubclass(MissingFileError, SerializationError)
    assert issubclass(SerializationError, ValueError)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, cut):
    data = saved_bytes()
    path = write(tmp_path, data[: int(len(data) * cut)], "trunc.npz")
    with pytest.raises(SerializationError, match=r"trunc\.npz.*truncated or corrupt"):
        load(path)


def test_truncated_to_the_signature(tmp_path):
    with pytest.raises(SerializationError, match="truncated or corrupt"):
        load(write(tmp_path, b"PK\x03\x04"))


def test_corrupt_array_bytes_fail_the_checksum(tmp_path):
    data = bytearray(saved_bytes())
    i = data.index(np.arange(1000.0)[500:501].tobytes())
    data[i] ^= 0xFF
    with pytest.raises(SerializationError, match="truncated or corrupt.*'w'"):
        load(write(tmp_path, bytes(data)))


def test_empty_file(tmp_path):
    with pytest.raises(SerializationError, match="bad.*is not a mikagrad file.*empty"):
        load(write(tmp_path, b""))


def test_random_bytes(tmp_path):
    data = np.random.default_rng(0).bytes(4096)
    with pytest.raises(SerializationError, match="not a mikagrad file.*zip signature"):
        load(write(tmp_path, data))


def test_text_file(tmp_path):
    with pytest.raises(SerializationError, match="not a mikagrad file"):
        load(write(tmp_path, b"weight,bias\n1.0,2.0\n"))


class _Boom:
    def __reduce__(self):
        return (pytest.fail, ("loading executed code from a pickle",))


def test_pickle_file_is_refused_without_running_it(tmp_path):
    path = write(tmp_path, pickle.dumps({"w": _Boom()}))
    with pytest.raises(SerializationError, match="pickle"):
        load(path)


def test_single_npy_file(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.ones(3))
    with pytest.raises(SerializationError, match=r"single \.npy array"):
        load(write(tmp_path, buf.getvalue()))


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weight=np.ones(3), bias=np.zeros(1))
    with pytest.raises(SerializationError, match="foreign.npz.*not a mikagrad file.*'weight'"):
        load(path)


def test_foreign_zip(tmp_path):
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": _Boom()}))
    with pytest.raises(SerializationError, match="not a mikagrad file"):
        load(path)


def metadata_npz(tmp_path, meta, **arrays):
    path = tmp_path / "meta.npz"
    raw = json.dumps(meta).encode() if not isinstance(meta, bytes) else meta
    np.savez(path, __mikagrad__=np.frombuffer(raw, dtype=np.uint8), **arrays)
    return path


def test_npz_with_a_pickled_object_array(tmp_path):
    meta = {"format": "mikagrad.state", "version": 1, "tree": {"dict": [["w", {"array": "w"}]]}}
    path = metadata_npz(tmp_path, meta, w=np.array([_Boom()], dtype=object))
    with pytest.raises(SerializationError, match="'w' holds pickled Python objects"):
        load(path)


@pytest.mark.parametrize("meta, fragment", [
    (b"\xff\xfe not utf-8", "corrupt mikagrad metadata"),
    (b"{not json", "corrupt mikagrad metadata"),
    ({"format": "something else", "tree": None}, "corrupt mikagrad metadata"),
    ({"format": "mikagrad.state", "version": 99, "tree": None}, "format version 99"),
    ({"format": "mikagrad.state", "version": 1, "tree": {"array": "gone"}}, "lacks"),
    ({"format": "mikagrad.state", "version": 1, "tree": {"eval": "os.system"}}, "unexpected"),
    ({"format": "mikagrad.state", "version": 1, "tree": {"dict": [[1.5, 2]]}}, "malformed"),
    ({"format": "mikagrad.state", "version": 1, "tree": {"list": 3}}, "not a list"),
])
def test_corrupt_metadata(tmp_path, meta, fragment):
    with pytest.raises(SerializationError, match=rf"meta\.npz.*{fragment}"):
        load(metadata_npz(tmp_path, meta))


def test_metadata_of_the_wrong_dtype(tmp_path):
    path = tmp_path / "meta.npz"
    np.savez(path, __mikagrad__=np.ones(3))
    with pytest.raises(SerializationError, match="corrupt mikagrad metadata.*float64"):
        load(path)


# ---- safetensors ------------------------------------------------------------------------


ST_DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8, np.int8,
             np.float16, np.int16]


def st_state():
    rng = np.random.default_rng(1)
    out = {f"t.{np.dtype(d).name}": (rng.standard_normal((3, 2)) * 50).astype(d)
           for d in ST_DTYPES}
    out["scalar"] = np.array(2.5, dtype=np.float32)
    out["empty"] = np.zeros((0, 4), dtype=np.float64)
    out["col"] = np.asfortranarray(rng.standard_normal((3, 4)))
    return out


def test_safetensors_round_trip_is_bitwise_exact(tmp_path):
    state = st_state()
    path = tmp_path / "model.safetensors"
    save(state, path)
    back = load(path)
    assert sorted(back) == sorted(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert back[k].tobytes() == np.ascontiguousarray(v).tobytes(), k
        assert back[k].flags.writeable and back[k].flags.c_contiguous


def test_safetensors_layout_is_the_reference_one(tmp_path):
    """8-byte length, a JSON header padded to 8 bytes, tensors tiling the data."""
    save({"b": np.arange(3, dtype=np.int32), "a": np.ones(2)}, tmp_path / "x.safetensors")
    raw = (tmp_path / "x.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and raw[8:9] == b"{"
    header = json.loads(raw[8:8 + n])
    assert header["a"] == {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}
    assert header["b"] == {"dtype": "I32", "shape": [3], "data_offsets": [16, 28]}
    assert len(raw) == 8 + n + 28


def test_safetensors_by_format_and_file_objects():
    buf = io.BytesIO()
    save({"w": mg.Value([1.0, 2.0])}, buf, format="safetensors")
    buf.seek(0)
    assert buf.read(9)[8:9] == b"{"
    buf.seek(0)
    assert load(buf)["w"].tolist() == [1.0, 2.0]  # told apart by its first bytes
    with pytest.raises(ValueError, match="format must be"):
        save({}, io.BytesIO(), format="pt")


def test_a_module_state_dict_round_trips_through_safetensors(tmp_path):
    model = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.ReLU(), mg.nn.BatchNorm1d(4))
    save(model.state_dict(), tmp_path / "m.safetensors")
    other = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.ReLU(), mg.nn.BatchNorm1d(4))
    other.load_state_dict(load(tmp_path / "m.safetensors"))
    x = mg.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    assert np.array_equal(model.eval()(x).numpy(), other.eval()(x).numpy())


@pytest.mark.parametrize("obj, match", [
    ({"a": {"b": np.ones(1)}}, "holds arrays only"),
    ({"a": 3}, "holds arrays only"),
    ({1: np.ones(1)}, "keys must be str"),
    ([np.ones(1)], "dict of named arrays"),
    ({"a": np.array(["x"])}, "cannot hold"),
    ({"a": np.ones(2, dtype=np.complex64)}, "cannot hold"),
])
def test_safetensors_refuses_what_it_cannot_hold(obj, match, tmp_path):
    with pytest.raises(TypeError, match=match):
        save(obj, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def st_file(header, data=b"", raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("blob, fragment", [
    (st_file(None, raw_header=b"{not json"), "header is not JSON"),
    (st_file(None, raw_header=b'{"a": 1, "a": 2}'), "duplicate key 'a'"),
    (st_file({"a": {"dtype": "F32", "shape": [2]}}), "exactly 'dtype', 'shape'"),
    (st_file({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"0000"),
     "unknown dtype 'Q9'"),
    (st_file({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"00"),
     "numpy cannot hold"),
    (st_file({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"0000"),
     "non-negative ints"),
    (st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"0000"),
     "needs 8 bytes"),
    (st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
              "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, b"000000"),
     "gaps or overlaps"),
    (st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"0000"),
     "truncated"),
    (st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"00000000"),
     "cover 4 bytes of data but the file holds 8"),
    (st_file({"__metadata__": {"k": 1}}), "'__metadata__' must map strings"),
    (st_file(None, raw_header=b"[1]     "), "JSON list, not an object"),
    ((10**6).to_bytes(8, "little") + b"{}", "runs past the end"),
])
def test_malformed_safetensors_files_are_a_serialization_error(blob, fragment, tmp_path):
    path = write(tmp_path, blob, "bad.safetensors")
    with pytest.raises(SerializationError, match=r"bad\.safetensors") as e:
        load(path)
    assert fragment in str(e.value)


def test_safetensors_metadata_is_accepted_and_dropped(tmp_path):
    blob = st_file({"__metadata__": {"format": "pt"},
                    "w": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}},
                   (7).to_bytes(8, "little"))
    assert load(write(tmp_path, blob, "m.safetensors")) == {"w": np.array(7)}


def test_safetensors_files_interoperate_with_the_reference_library(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy")
    state = {k: np.ascontiguousarray(v) for k, v in st_state().items()}
    save(state, tmp_path / "ours.safetensors")
    theirs = st_np.load_file(str(tmp_path / "ours.safetensors"))
    st_np.save_file(state, str(tmp_path / "theirs.safetensors"))
    assert (tmp_path / "theirs.safetensors").read_bytes() == \
        (tmp_path / "ours.safetensors").read_bytes()
    back = load(tmp_path / "theirs.safetensors")
    for k, v in state.items():
        assert theirs[k].dtype == v.dtype and theirs[k].tobytes() == v.tobytes()
        assert back[k].dtype == v.dtype and back[k].tobytes() == v.tobytes()


def test_safetensors_files_interoperate_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    model = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.BatchNorm1d(4))
    save(model.state_dict(), tmp_path / "ours.safetensors")
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).double()
    tmodel.load_state_dict(st_torch.load_file(str(tmp_path / "ours.safetensors")))
    for k, v in tmodel.state_dict().items():
        assert np.array_equal(v.numpy(), model.state_dict()[k]), k
    with torch.no_grad():
        tmodel[0].weight.mul_(2)
    st_torch.save_file(tmodel.state_dict(), str(tmp_path / "theirs.safetensors"))
    back = load(tmp_path / "theirs.safetensors")
    assert back["1.num_batches_tracked"].dtype == np.int64
    model.load_state_dict(back)
    assert np.array_equal(model[0].weight.numpy(), tmodel[0].weight.detach().numpy())


def test_safetensors_edge_headers(tmp_path):
    blob = st_file({"__metadata__": None, "w": {"dtype": "U8", "shape": [2],
                                                 "data_offsets": [0, 2]}}, b"\x01\x02")
    assert load(write(tmp_path, blob, "a.safetensors"))["w"].tolist() == [1, 2]
    huge = st_file({"w": {"dtype": "F64", "shape": [2**40, 2**40], "data_offsets": [0, 8]}},
                   b"0" * 8)
    with pytest.raises(SerializationError, match="overflows a 64-bit size"):
        load(write(tmp_path, huge, "b.safetensors"))
    zero = st_file({"w": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}})
    with pytest.raises(SerializationError, match="overflows a 64-bit size"):
        load(write(tmp_path, zero, "d.safetensors"))
    listed = st_file({"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, b"0000")
    with pytest.raises(SerializationError, match="unknown dtype"):
        load(write(tmp_path, listed, "e.safetensors"))
    big_header = (200_000_000).to_bytes(8, "little") + b"{}"
    with pytest.raises(SerializationError, match="over the format's limit"):
        load(write(tmp_path, big_header, "c.safetensors"))


def test_safetensors_non_ascii_keys_match_the_reference(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy")
    state = {"poids.é": np.ones(2, np.float32), "权重": np.zeros(1, np.int64)}
    save(state, tmp_path / "ours.safetensors")
    st_np.save_file(state, str(tmp_path / "theirs.safetensors"))
    assert (tmp_path / "ours.safetensors").read_bytes() == \
        (tmp_path / "theirs.safetensors").read_bytes()
    assert sorted(load(tmp_path / "theirs.safetensors")) == sorted(state)


class Pipe(io.RawIOBase):
    """A stream that cannot seek, as a pipe or an HTTP response."""

    def __init__(self, data):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        chunk = self.data.read(len(b))
        b[:len(chunk)] = chunk
        return len(chunk)


def test_load_reads_through_a_stream_that_cannot_seek():
    for fmt in ("safetensors", "npz"):
        buf = io.BytesIO()
        save({"w": np.arange(3.0)}, buf, format=fmt)
        assert load(io.BufferedReader(Pipe(buf.getvalue())))["w"].tolist() == [0.0, 1.0, 2.0]
