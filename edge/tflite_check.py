"""Check a ``.tflite`` file's structure before any interpreter sees it.

The LiteRT interpreter trusts its input: a truncated file or one flipped bit in an offset
can make it read outside the buffer and crash the process (a segfault, not an error). This
module walks the FlatBuffer the way a FlatBuffers verifier does, without the interpreter:
every offset, vtable, vector and string must lie inside the file, and the model's own
cross references must hold (a tensor's buffer, an operator's opcode and tensors, a
subgraph's inputs and outputs, a signature's tensors), and a constant tensor's data must
be as large as its shape and type say. Anything else raises ``ModelError`` with one line.

Field numbers follow TensorFlow Lite's ``schema.fbs`` (Model, SubGraph, Tensor, Operator,
Buffer, SignatureDef, TensorMap). Only what the step model uses is walked; builtin options
tables are covered by the sha256 recorded in the model's JSON (``edge.model``).
"""

from __future__ import annotations

import struct

from .errors import ModelError

UOFFSET = 4
VOFFSET = 2
MAX_DEPTH_ITEMS = 1_000_000
"""No real step model has this many tensors, operators or buffers; a flipped length does."""
MAX_RANK = 8
MAX_DIM = 1 << 24
TENSOR_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 0, 14: 0,
                     15: 4, 16: 2, 17: 0, 18: 2}
"""TensorType (FLOAT32 ... BFLOAT16) -> bytes per element; 0: not fixed (string, resource,
variant, packed int4), whose constant data size is not checked."""


class Model:
    VERSION, OPERATOR_CODES, SUBGRAPHS, DESCRIPTION, BUFFERS, METADATA_BUFFER, METADATA, SIGNATURE_DEFS = range(8)


class SubGraph:
    TENSORS, INPUTS, OUTPUTS, OPERATORS, NAME = range(5)


class Tensor:
    SHAPE, TYPE, BUFFER, NAME, QUANTIZATION, IS_VARIABLE, SPARSITY, SHAPE_SIGNATURE = range(8)


class Operator:
    OPCODE_INDEX, INPUTS, OUTPUTS = range(3)


class Buffer:
    DATA, OFFSET, SIZE = range(3)


class SignatureDef:
    INPUTS, OUTPUTS, SIGNATURE_KEY, DEPRECATED_TAG, SUBGRAPH_INDEX = range(5)


class TensorMap:
    NAME, TENSOR_INDEX = range(2)


class Quantization:
    MIN, MAX, SCALE, ZERO_POINT = range(4)


class Reader:
    """Bounds-checked reads of FlatBuffer tables, vectors and strings in ``data``."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.source}: corrupt TFLite model ({what})")

    def _unpack(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise self.fail(f"read past the end at byte {pos}")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def root(self) -> int:
        return self.deref(0)

    def deref(self, pos: int) -> int:
        target = pos + self.u32(pos)
        if target >= len(self.data):
            raise self.fail(f"offset at byte {pos} points past the end")
        return target

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table`` (None: absent)."""
        vtable = table - self.i32(table)
        vsize = self._unpack("<H", vtable)
        tsize = self._unpack("<H", vtable + VOFFSET)
        if vsize < 2 * VOFFSET or vsize % VOFFSET or vtable + vsize > len(self.data) or table + tsize > len(self.data):
            raise self.fail(f"bad vtable for the table at byte {table}")
        slot = 2 * VOFFSET + index * VOFFSET
        if slot + VOFFSET > vsize:
            return None
        offset = self._unpack("<H", vtable + slot)
        if offset == 0:
            return None
        if offset >= tsize:
            raise self.fail(f"field {index} outside its table at byte {table}")
        return table + offset

    def scalar(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, index)
        return default if pos is None else self._unpack(fmt, pos)

    def table(self, table: int, index: int) -> int | None:
        pos = self.field(table, index)
        return None if pos is None else self.deref(pos)

    def vector(self, table: int, index: int, element_size: int, max_items: int | None = None) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent. ``max_items`` caps vectors the
        checker walks item by item; a byte vector (a weight buffer) is only bounded by the file."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = self.deref(pos)
        length = self.u32(start)
        if (max_items is not None and length > max_items) or start + UOFFSET + length * element_size > len(self.data):
            raise self.fail(f"vector of {length} items at byte {start} runs past the end")
        return start + UOFFSET, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index, UOFFSET, MAX_DEPTH_ITEMS)
        return [self.deref(start + i * UOFFSET) for i in range(length)]

    def ints(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index, 4, MAX_DEPTH_ITEMS)
        return [self.i32(start + 4 * i) for i in range(length)]

    def string(self, table: int, index: int) -> str:
        start, length = self.vector(table, index, 1)
        return self.data[start : start + length].decode("utf-8", errors="replace")


class ModelChecker:
    """Walks one model; ``check()`` raises ``ModelError`` at the first inconsistency."""

    def __init__(self, data: bytes, source: str) -> None:
        self.r = Reader(data, source)
        self.data = data

    def check(self) -> None:
        r = self.r
        if len(self.data) < 2 * UOFFSET:
            raise r.fail("file too short")
        model = r.root()
        opcodes = r.tables(model, Model.OPERATOR_CODES)
        buffers = r.tables(model, Model.BUFFERS)
        subgraphs = r.tables(model, Model.SUBGRAPHS)
        if not subgraphs:
            raise r.fail("no subgraphs")
        data_sizes = [self._buffer_size(b) for b in buffers]
        tensor_counts = [self._subgraph(g, len(opcodes), data_sizes) for g in subgraphs]
        for sig in r.tables(model, Model.SIGNATURE_DEFS):
            self._signature(sig, tensor_counts)

    def _buffer_size(self, buffer: int) -> int:
        r = self.r
        _, length = r.vector(buffer, Buffer.DATA, 1)
        offset = r.scalar(buffer, Buffer.OFFSET, "<Q")
        size = r.scalar(buffer, Buffer.SIZE, "<Q")
        if offset > 1 and offset + size > len(self.data):
            raise r.fail(f"buffer data at {offset}+{size} runs past the end")
        return length or (size if offset > 1 else 0)

    def _subgraph(self, graph: int, n_opcodes: int, data_sizes: list[int]) -> int:
        r = self.r
        tensors = r.tables(graph, SubGraph.TENSORS)
        for tensor in tensors:
            self._tensor(tensor, data_sizes)
        n = len(tensors)
        for index in r.ints(graph, SubGraph.INPUTS) + r.ints(graph, SubGraph.OUTPUTS):
            if not 0 <= index < n:
                raise r.fail(f"subgraph input/output {index} is not one of its {n} tensors")
        for op in r.tables(graph, SubGraph.OPERATORS):
            if r.scalar(op, Operator.OPCODE_INDEX, "<I") >= n_opcodes:
                raise r.fail(f"operator uses opcode {r.scalar(op, Operator.OPCODE_INDEX, '<I')} of {n_opcodes}")
            for index in r.ints(op, Operator.INPUTS) + r.ints(op, Operator.OUTPUTS):
                if not -1 <= index < n:
                    raise r.fail(f"operator tensor {index} is not one of the subgraph's {n} tensors")
        return n

    def _tensor(self, tensor: int, data_sizes: list[int]) -> None:
        r = self.r
        shape = r.ints(tensor, Tensor.SHAPE)
        if len(shape) > MAX_RANK or any(not -1 <= d <= MAX_DIM for d in shape):
            raise r.fail(f"tensor shape {shape[:MAX_RANK + 1]} is impossible")
        ttype = r.scalar(tensor, Tensor.TYPE, "<b")
        if ttype not in TENSOR_TYPE_BYTES:
            raise r.fail(f"unknown tensor type {ttype}")
        buffer = r.scalar(tensor, Tensor.BUFFER, "<I")
        if buffer >= len(data_sizes):
            raise r.fail(f"tensor uses buffer {buffer} of {len(data_sizes)}")
        r.string(tensor, Tensor.NAME)
        self._quantization(tensor)
        size = data_sizes[buffer]
        elements = 1
        for d in shape:
            elements *= max(d, 0)
        width = TENSOR_TYPE_BYTES[ttype]
        if size and width and size != elements * width:
            raise r.fail(f"constant tensor holds {size} bytes, its shape {shape} needs {elements * width}")

    def _quantization(self, tensor: int) -> None:
        r = self.r
        quant = r.table(tensor, Tensor.QUANTIZATION)
        if quant is None:
            return
        _, n_scale = r.vector(quant, Quantization.SCALE, 4)
        _, n_zero = r.vector(quant, Quantization.ZERO_POINT, 8)
        r.vector(quant, Quantization.MIN, 4)
        r.vector(quant, Quantization.MAX, 4)
        if n_scale != n_zero:
            raise r.fail(f"tensor has {n_scale} quantization scales but {n_zero} zero points")

    def _signature(self, sig: int, tensor_counts: list[int]) -> None:
        r = self.r
        graph = r.scalar(sig, SignatureDef.SUBGRAPH_INDEX, "<I")
        if graph >= len(tensor_counts):
            raise r.fail(f"signature uses subgraph {graph} of {len(tensor_counts)}")
        r.string(sig, SignatureDef.SIGNATURE_KEY)
        for index in (SignatureDef.INPUTS, SignatureDef.OUTPUTS):
            for entry in r.tables(sig, index):
                r.string(entry, TensorMap.NAME)
                if r.scalar(entry, TensorMap.TENSOR_INDEX, "<I") >= tensor_counts[graph]:
                    raise r.fail("signature names a tensor the subgraph does not have")


def check_tflite(data: bytes, source: str) -> None:
    """Raise ``ModelError`` (one line, naming ``source``) unless ``data`` is a well-formed TFLite FlatBuffer."""
    ModelChecker(data, source).check()
