"""torch.save's pickle of an `_ESM.pt`'s content, written in one pass instead of per tensor.

`torch.save` pickles every tensor through Python (`Tensor.__reduce_ex__`, a `TypedStorage`,
a `persistent_id` call for each of its ~20 objects): for 10,000 rows that is most of the
time an output takes to write. Every row of `{'proteins': [...], 'data': [...]}` pickles to
the same opcodes but for its offset and memo numbers, so `Pickler.dump` writes those bytes
itself, memoizing objects by identity as pickle does. Given to `torch.save` as its
`pickle_module`, it leaves the archive (zip records, storages, alignment) to torch: the file
is byte for byte torch.save's but for torch's random `.data/serialization_id`.
Content of any other shape is pickled by pickle itself, exactly as torch.save would.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import types

import torch

PROTOCOL = 2  # torch.save's default, the only protocol written here
_BATCH = 1000  # pickle writes list and dict items in batches of this size
_FLOAT = torch.float32


def _int(value: int) -> bytes:
    """An int as protocol 2 writes it (BININT1, BININT2, BININT or LONG1)."""
    if 0 <= value <= 0xFF:
        return b"K" + bytes((value,))
    if 0 <= value <= 0xFFFF:
        return b"M" + struct.pack("<H", value)
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    return pickle.dumps(value, PROTOCOL)[2:-1]


class _Memo:
    """Pickle's memo, in the form `pickle.Pickler.memo` takes: id -> (index, object); the
    objects are kept, so no id is reused. Rows also take anonymous indices (their tuples)."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[int, object]] = {}
        self.size = 0

    def put(self, obj: object = None) -> bytes:
        """Memoize the object just written (an anonymous one when `obj` is None)."""
        index = self.size
        self.size += 1
        if obj is not None:
            self.entries[id(obj)] = (index, obj)
        return b"q" + bytes((index,)) if index < 256 else b"r" + struct.pack("<I", index)

    def reserve(self, count: int, last: object) -> int:
        """The first of `count` new indices, the last of them `last`'s (written by the caller)."""
        first = self.size
        self.size += count
        self.entries[id(last)] = (self.size - 1, last)
        return first

    def get(self, obj: object) -> bytes | None:
        """BINGET of `obj` if it was written before, else None."""
        entry = self.entries.get(id(obj))
        if entry is None:
            return None
        index = entry[0]
        return b"h" + bytes((index,)) if index < 256 else b"j" + struct.pack("<I", index)

    def string(self, text: str) -> bytes:
        cached = self.get(text)
        if cached is not None:
            return cached
        encoded = text.encode("utf-8", "surrogatepass")
        return b"X" + struct.pack("<I", len(encoded)) + encoded + self.put(text)

    def global_(self, obj: object, module: str, name: str) -> bytes:
        cached = self.get(obj)
        return cached or b"c" + f"{module}\n{name}\n".encode() + self.put(obj)

    def pickle(self, strings: list[str]) -> bytes:
        """A list of strings by pickle's own (C) pickler, carrying on from this memo."""
        if self.size != len(self.entries):  # pickle numbers its memo by its length
            raise ValueError("anonymous memo entries before a list of strings")
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, PROTOCOL)
        pickler.memo = self.entries
        pickler.dump(strings)
        self.entries = pickler.memo.copy()
        self.size = len(self.entries)
        return buffer.getvalue()[2:-1]  # without PROTO and STOP


def _batched(items: list[bytes]) -> bytes:
    """A list's items as pickle appends them: APPEND for one, else MARK ... APPENDS batches."""
    if not items:
        return b""
    if len(items) == 1:
        return items[0] + b"a"
    return b"".join(
        b"(" + b"".join(items[start : start + _BATCH]) + b"e"
        for start in range(0, len(items), _BATCH)
    )


def _plain_row(tensor: object) -> bool:
    """True for a tensor torch.save pickles as `_rebuild_tensor_v2` of a FloatStorage with
    nothing else: a plain 1-D float32 CPU tensor without grad, hooks, attributes or neg bit."""
    return (
        type(tensor) is torch.Tensor
        and tensor.dtype is _FLOAT
        and tensor.is_cpu
        and tensor.layout is torch.strided
        and tensor.dim() == 1
        and not tensor.requires_grad
        and tensor._backward_hooks is None
        and not tensor.is_neg()
        and not tensor.__dict__
    )


def _is_embeddings(obj: object) -> bool:
    if type(obj) is not dict or list(obj) != ["proteins", "data"]:
        return False
    proteins, data = obj["proteins"], obj["data"]
    return (
        type(proteins) is list
        and type(data) is list
        and all(type(protein) is str for protein in proteins)
        and all(_plain_row(row) for row in data)
    )


def _offset_format(offset: int) -> tuple[bytes, str] | None:
    """The opcode and struct format of `_int(offset)`; None for a LONG1."""
    if 0 <= offset <= 0xFF:
        return b"K", "B"
    if 0 <= offset <= 0xFFFF:
        return b"M", "H"
    return (b"J", "i") if offset < 2**31 else None


class _Rows:
    """Each row's pickle: `_rebuild_tensor_v2(<storage>, offset, (size,), (stride,), False,
    OrderedDict())`, its storage a persistent id that registers it with torch.save.

    Once every shared object is memoized and memo indices take 4 bytes, a row's bytes have a
    fixed layout but for its offset and six memo indices: one `struct` pack per row."""

    def __init__(self, memo: _Memo, persistent_id) -> None:
        self.memo, self.persistent_id = memo, persistent_id
        self.heads: dict[int, bytes] = {}  # storage -> its persistent id, memoized
        self.layouts: dict[tuple, tuple[struct.Struct, tuple[bytes, ...]]] = {}

    def _storage_id(self, pid: tuple) -> bytes:  # the persistent id's tuple, up to TUPLE
        memo = self.memo
        tag, kind, key, location, numel = pid
        return b"".join((
            b"(", memo.string(tag), memo.global_(kind, kind.__module__, kind.__name__),
            memo.string(key), memo.string(location), _int(numel), b"t",
        ))  # fmt: skip

    def _rebuild(self) -> bytes:
        return self.memo.global_(
            torch._utils._rebuild_tensor_v2, "torch._utils", "_rebuild_tensor_v2"
        )

    def _hooks(self) -> bytes:
        return self.memo.global_(collections.OrderedDict, "collections", "OrderedDict")

    def pickle(self, row: torch.Tensor) -> bytes:
        memo = self.memo
        again = memo.get(row)
        if again is not None:  # the same tensor object twice: pickle refers back to it
            return again
        storage = row.untyped_storage()._cdata
        offset, size, stride = row.storage_offset(), row.shape[0], row.stride()[0]
        if storage in self.heads and memo.size >= 256 and (code := _offset_format(offset)):
            layout = self.layouts.get((storage, size, stride, code))
            if layout is None:
                layout = self.layouts[storage, size, stride, code] = self._layout(
                    storage, size, stride, code
                )
            shape, chunks = layout
            m = memo.reserve(6, row)
            return shape.pack(chunks[0], m, chunks[1], offset, chunks[2], m + 1, chunks[3],
                              m + 2, chunks[4], m + 3, b"tr", m + 4, b"Rr", m + 5)  # fmt: skip
        rebuild = self._rebuild()
        head = self.heads.get(storage)
        if head is None:  # a new storage: torch.save's persistent_id registers it
            typed = torch.storage.TypedStorage(
                wrap_storage=row.untyped_storage(), dtype=_FLOAT, _internal=True
            )
            pid = self.persistent_id(typed)
            head, self.heads[storage] = self._storage_id(pid), self._storage_id(pid)
        return b"".join((
            rebuild, b"(", head, memo.put(), b"Q", _int(offset),
            _int(size), b"\x85", memo.put(), _int(stride), b"\x85", memo.put(),
            b"\x89", self._hooks(), b")R", memo.put(), b"t", memo.put(), b"R", memo.put(row),
        ))  # fmt: skip

    def _layout(self, storage: int, size: int, stride: int, code: tuple[bytes, str]):
        chunks = (
            self._rebuild() + b"(" + self.heads[storage] + b"r",
            b"Q" + code[0],
            _int(size) + b"\x85r",
            _int(stride) + b"\x85r",
            b"\x89" + self._hooks() + b")Rr",
        )
        lengths = [len(chunk) for chunk in chunks]
        shape = struct.Struct(
            f"<{lengths[0]}sI{lengths[1]}s{code[1]}{lengths[2]}sI{lengths[3]}sI{lengths[4]}sI2sI2sI"
        )
        return shape, chunks


def _embeddings_pickle(content: dict, persistent_id) -> bytes:
    memo = _Memo()
    stream = [b"\x80\x02}", memo.put(content), b"("]
    for key, items in content.items():
        stream.append(memo.string(key))
        if key == "proteins":
            stream.append(memo.pickle(items))
        else:
            rows = _Rows(memo, persistent_id)
            stream += [b"]", memo.put(items), _batched([rows.pickle(row) for row in items])]
    stream.append(b"u.")
    return b"".join(stream)


class Pickler(pickle.Pickler):
    """torch.save's pickler, for `{'proteins': [str], 'data': [plain 1-D float32 tensors]}`
    in one pass; anything else pickled by pickle with torch's `persistent_id`."""

    def __init__(self, file, protocol: int | None = None, **options) -> None:
        super().__init__(file, protocol, **options)
        self._file, self._protocol = file, protocol

    def dump(self, obj: object) -> None:
        if self._protocol != PROTOCOL or not _is_embeddings(obj):
            super().dump(obj)
            return
        self._file.write(_embeddings_pickle(obj, self.persistent_id))


# What `torch.save(..., pickle_module=)` takes: a module-like object with a `Pickler`.
PICKLE_MODULE = types.SimpleNamespace(__name__=__name__, Pickler=Pickler)
