"""Editing the pickled state inside a TorchScript archive, to make hostile
files: a saved model's data.pkl is read into plain Python placeholders (no
torch class is resolved), a test changes the state of qext's custom-class
objects, and the archive is written again. Only the test suite uses this."""

from __future__ import annotations

import copyreg
import io
import pickle
import zipfile
from typing import Any, Callable, Iterator

import torch


class Placeholder:
    """An object of a pickled class that is not resolved: remembers its
    constructor arguments (REDUCE) or its state (NEWOBJ + BUILD)."""

    qualname: tuple[str, str] = ("", "")
    args: tuple = ()  # NEWOBJ creates objects without __init__
    built = False
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.built = False
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.built = True
        self.state = state

    def __reduce_ex__(self, protocol: int) -> Any:
        if self.built:
            return (copyreg.__newobj__, (type(self),), self.state)
        return (type(self), self.args)


class PersistentRef:
    def __init__(self, pid: Any) -> None:
        self.pid = pid


class _Unpickler(pickle._Unpickler):  # the pure-Python one, so classes need not exist
    classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> type:
        key = (module, name)
        if key not in self.classes:
            self.classes[key] = type(name, (Placeholder,), {"qualname": key})
        return self.classes[key]

    def persistent_load(self, pid: Any) -> PersistentRef:
        return PersistentRef(pid)


class _Pickler(pickle._Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, PersistentRef) else None

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, type) and issubclass(obj, Placeholder):
            module, qualname = obj.qualname
            self.write(pickle.GLOBAL + module.encode() + b"\n" + qualname.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def save_long(self, obj: int) -> None:
        # TorchScript's unpickler reads LONG1 only as 8 bytes.
        if -(2**31) <= obj < 2**31:
            return super().save_long(obj)
        self.write(pickle.LONG1 + bytes([8]) + obj.to_bytes(8, "little", signed=True))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[type] = save_global
    dispatch[int] = save_long


class Archive:
    """A TorchScript zip archive with its data.pkl unpickled into placeholders."""

    def __init__(self, path: str) -> None:
        with zipfile.ZipFile(path) as z:
            self.files = {n: z.read(n) for n in z.namelist()}
        self.pkl_name = next(n for n in self.files if n.endswith("/data.pkl"))
        self.prefix = self.pkl_name[: -len("data.pkl")]
        self.root = _Unpickler(io.BytesIO(self.files[self.pkl_name])).load()

    def objects(self, class_name: str) -> Iterator[Placeholder]:
        """Every pickled object whose class name ends with ``class_name``."""
        seen: set[int] = set()

        def walk(x: Any) -> Iterator[Placeholder]:
            if id(x) in seen:
                return
            seen.add(id(x))
            if isinstance(x, Placeholder):
                if x.qualname[1] == class_name or x.qualname[0].endswith("." + class_name):
                    yield x
                for part in (x.args, x.state):
                    yield from walk(part)
            elif isinstance(x, (list, tuple)):
                for item in x:
                    yield from walk(item)
            elif isinstance(x, dict):
                for item in x.values():
                    yield from walk(item)

        return walk(self.root)

    def tensor(self, t: torch.Tensor) -> Placeholder:
        """A new pickled tensor holding ``t`` (its bytes stored as a new record)."""
        t = t.detach().contiguous()
        key = str(sum(n.startswith(self.prefix + "data/") for n in self.files) + 1000)
        self.files[self.prefix + "data/" + key] = t.numpy().tobytes() if t.numel() else b""
        storage_class = _Unpickler.find_class(_Unpickler, "torch", {
            torch.float32: "FloatStorage", torch.float64: "DoubleStorage", torch.int64: "LongStorage",
            torch.int32: "IntStorage", torch.int8: "CharStorage", torch.uint8: "ByteStorage"}[t.dtype])
        ref = PersistentRef(("storage", storage_class, key, "cpu", t.numel()))
        rebuild = _Unpickler.find_class(_Unpickler, "torch._utils", "_rebuild_tensor_v2")
        ordered_dict = _Unpickler.find_class(_Unpickler, "collections", "OrderedDict")
        return rebuild(ref, 0, tuple(t.shape), tuple(t.stride()), False, ordered_dict())

    def int_list(self, values: list) -> Placeholder:
        """A new pickled int[] (TorchScript writes them through build_intlist)."""
        return _Unpickler.find_class(_Unpickler, "torch.jit._pickle", "build_intlist")(list(values))

    def tensor_list(self, tensors: list) -> Placeholder:
        """A new pickled Tensor[] (TorchScript writes them through
        build_tensorlist); ``tensors`` are Archive.tensor placeholders."""
        return _Unpickler.find_class(_Unpickler, "torch.jit._pickle", "build_tensorlist")(list(tensors))

    def save(self, path: str) -> None:
        out = io.BytesIO()
        _Pickler(out, protocol=2).dump(self.root)
        self.files[self.pkl_name] = out.getvalue()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for name, data in self.files.items():
                z.writestr(name, data)


def edit_states(src: str, dst: str, class_name: str, edit: Callable[[list, Archive], None]) -> int:
    """Copies the archive ``src`` to ``dst`` with ``edit(state_list, archive)``
    applied to the state of every ``class_name`` object; returns how many."""
    archive = Archive(src)
    count = 0
    for obj in archive.objects(class_name):
        state = list(obj.state)
        edit(state, archive)
        obj.state = tuple(state)
        count += 1
    archive.save(dst)
    return count


