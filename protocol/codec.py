"""Encoders and decoders derived from the declarations.

For each (struct class, version, flexible) the first use generates one Python function
that reads, and one that writes, exactly the fields present in that version, and caches
them; nested structs get their own generated functions, bound into the parent's. The
generated code reads each run of consecutive fixed-width fields with a single
precompiled ``struct.Struct`` and calls small reader/writer closures for the rest, so a
decode costs a handful of C calls per struct instead of an interpreted walk over the
declaration.

Signatures are uniform so closures nest freely:
  decoder(buf, pos) -> (value, pos)        buf: a memoryview of the whole frame
  writer(b, value, holes) -> None          b: bytearray; holes collects RecordsRef cut
                                           points as (offset in b, ref)

Decoders never allocate from an unchecked length: every string, bytes, records and array
length is compared with the bytes left in the frame first (see primitives.py). They raise
ProtocolError, or struct.error / IndexError for a read past the end, which the frame
functions turn into ProtocolError.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from . import primitives as P
from .errors import ProtocolError
from .schema import Field, Message
from .types import ArrayOf, BYTES, Primitive, RECORDS, STRING, UUID

Reader = Callable[[Any, int], tuple[Any, int]]
Writer = Callable[[bytearray, Any, list], None]

_decoders: dict[tuple, Reader] = {}
_encoders: dict[tuple, Writer] = {}


# -- field-level readers -----------------------------------------------------------------


def _prim_reader(t: Primitive, nullable: bool, flex: bool) -> Reader:
    if t.fmt is not None:
        s = struct.Struct(">" + t.fmt)
        unpack, size = s.unpack_from, s.size

        def read_fixed(buf, pos):
            return unpack(buf, pos)[0], pos + size

        return read_fixed
    if t is UUID:
        return P.read_uuid
    if t is STRING:
        if flex:
            return P.read_compact_nullable_string if nullable else P.read_compact_string
        return P.read_nullable_string if nullable else P.read_string
    if t is BYTES:
        if flex:
            return P.read_compact_nullable_bytes if nullable else P.read_compact_bytes
        return P.read_nullable_bytes if nullable else P.read_bytes
    if t is RECORDS:
        read = P.read_compact_records if flex else P.read_records
        if nullable:
            return read

        def read_records_not_null(buf, pos):
            v, pos = read(buf, pos)
            if v is None:
                raise ProtocolError("null for non-nullable records")
            return v, pos

        return read_records_not_null
    raise TypeError(f"no reader for {t!r}")


def _min_size(t: Any, version: int, flex: bool) -> int:
    """The fewest bytes a value of type t can take: bounds array counts."""
    if isinstance(t, ArrayOf):
        return 1 if flex else 4
    if isinstance(t, Primitive):
        if t.size is not None:
            return t.size
        if flex:
            return 1
        return 2 if t is STRING else 4
    n = 1 if flex else 0
    for f in t.__kafka_fields__:
        if version in f.versions and not (flex and f.is_tagged(version)):
            n += _min_size(f.type, version, flex)
    return n


def _array_reader(t: ArrayOf, nullable: bool, version: int, flex: bool) -> Reader:
    elem = t.elem
    min_size = max(1, _min_size(elem, version, flex))
    read_len = P.read_array_length
    if isinstance(elem, Primitive) and elem.fmt is not None:
        fmt = elem.fmt

        def read_fixed_array(buf, pos):
            n, pos = read_len(buf, pos, flex, min_size)
            if n < 0:
                if nullable:
                    return None, pos
                raise ProtocolError("null for a non-nullable array")
            s = struct.Struct(f">{n}{fmt}")
            return list(s.unpack_from(buf, pos)), pos + s.size

        return read_fixed_array
    read_elem = _value_reader(elem, False, version, flex)

    def read_array(buf, pos):
        n, pos = read_len(buf, pos, flex, min_size)
        if n < 0:
            if nullable:
                return None, pos
            raise ProtocolError("null for a non-nullable array")
        out = []
        append = out.append
        for _ in range(n):
            v, pos = read_elem(buf, pos)
            append(v)
        return out, pos

    return read_array


def _value_reader(t: Any, nullable: bool, version: int, flex: bool) -> Reader:
    if isinstance(t, ArrayOf):
        return _array_reader(t, nullable, version, flex)
    if isinstance(t, Primitive):
        return _prim_reader(t, nullable, flex)
    sub = struct_decoder(t, version, flex)
    if not nullable:
        return sub

    def read_nullable_struct(buf, pos):
        # Kafka marks a nullable struct with an int8: negative for null, 1 present.
        if buf[pos] >= 0x80:
            return None, pos + 1
        return sub(buf, pos + 1)

    return read_nullable_struct


def field_reader(f: Field, version: int, flex: bool) -> Reader:
    return _value_reader(f.type, version in f.nullable, version, flex)


# -- field-level writers -----------------------------------------------------------------


def _adapt2(write2) -> Writer:
    def write(b, v, holes):
        write2(b, v)

    return write


def _prim_writer(t: Primitive, nullable: bool, flex: bool) -> Writer:
    if t.fmt is not None:
        pack = struct.Struct(">" + t.fmt).pack

        def write_fixed(b, v, holes):
            b += pack(v)

        return write_fixed
    if t is UUID:
        return _adapt2(P.write_uuid)
    if t is STRING:
        if flex:
            return _adapt2(P.write_compact_nullable_string if nullable else P.write_compact_string)
        return _adapt2(P.write_nullable_string if nullable else P.write_string)
    if t is BYTES:
        if flex:
            return _adapt2(P.write_compact_nullable_bytes if nullable else P.write_compact_bytes)
        return _adapt2(P.write_nullable_bytes if nullable else P.write_bytes)
    if t is RECORDS:
        return P.write_compact_records if flex else P.write_records
    raise TypeError(f"no writer for {t!r}")


def _array_writer(t: ArrayOf, nullable: bool, version: int, flex: bool) -> Writer:
    elem = t.elem
    write_uvarint = P.write_uvarint
    pack_count = P.INT32.pack
    null = b"\x00" if flex else b"\xff\xff\xff\xff"

    def write_count(b, v):
        if v is None:
            if not nullable:
                raise ValueError("None for a non-nullable array")
            b += null
            return False
        if flex:
            write_uvarint(b, len(v) + 1)
        else:
            b += pack_count(len(v))
        return True

    if isinstance(elem, Primitive) and elem.fmt is not None:
        fmt = elem.fmt

        def write_fixed_array(b, v, holes):
            if write_count(b, v):
                b += struct.pack(f">{len(v)}{fmt}", *v)

        return write_fixed_array
    write_elem = _value_writer(elem, False, version, flex)

    def write_array(b, v, holes):
        if write_count(b, v):
            for e in v:
                write_elem(b, e, holes)

    return write_array


def _value_writer(t: Any, nullable: bool, version: int, flex: bool) -> Writer:
    if isinstance(t, ArrayOf):
        return _array_writer(t, nullable, version, flex)
    if isinstance(t, Primitive):
        return _prim_writer(t, nullable, flex)
    sub = struct_encoder(t, version, flex)
    if not nullable:
        return sub

    def write_nullable_struct(b, v, holes):
        if v is None:
            b.append(0xFF)
        else:
            b.append(1)
            sub(b, v, holes)

    return write_nullable_struct


def field_writer(f: Field, version: int, flex: bool) -> Writer:
    return _value_writer(f.type, version in f.nullable, version, flex)


# -- tagged fields -----------------------------------------------------------------------


def _decode_tagged(read: Reader, data) -> Any:
    value, end = read(data, 0)
    if end != len(data):
        raise ProtocolError(f"tagged field has {len(data) - end} bytes beyond its value")
    return value


def _write_tags(b: bytearray, known: list | None, unknown: list | None, holes: list) -> None:
    items = []
    for tag, write, value in known or ():
        tmp = bytearray()
        inner: list = []
        write(tmp, value, inner)
        if inner:
            raise ValueError("a RecordsRef cannot be written inside a tagged field")
        items.append((tag, tmp))
    for tag, raw in unknown or ():
        items.append((tag, raw))
    items.sort(key=lambda item: item[0])
    P.write_uvarint(b, len(items))
    for tag, raw in items:
        P.write_uvarint(b, tag)
        P.write_uvarint(b, len(raw))
        b += raw


# -- struct codecs (generated) -----------------------------------------------------------


def _present(cls, version: int, flex: bool) -> tuple[list, list]:
    regular, tagged = [], []
    for i, f in enumerate(cls.__kafka_fields__):
        if version not in f.versions:
            continue
        if f.is_tagged(version):
            if not flex:
                raise TypeError(f"{cls.__name__}.{f.name} is tagged in non-flexible v{version}")
            tagged.append((i, f))
        else:
            regular.append((i, f))
    return regular, tagged


def _fixed_runs(regular: list) -> list:
    """Group consecutive fixed-width fields: [(fields, struct) | (field,)]."""
    out: list = []
    run: list = []
    for item in regular:
        t = item[1].type
        if isinstance(t, Primitive) and t.fmt is not None:
            run.append(item)
            continue
        if run:
            out.append(run)
            run = []
        out.append(item)
    if run:
        out.append(run)
    return out


def _default_expr(i: int, f: Field, ns: dict) -> str:
    d = f.default
    if isinstance(d, list):
        return "[]"
    if isinstance(d, Message):
        ns[f"_f{i}"] = type(d)
        return f"_f{i}()"
    ns[f"_c{i}"] = d
    return f"_c{i}"


def _compile(src: str, ns: dict, name: str):
    exec(compile(src, f"<kafkito codec {name}>", "exec"), ns)
    return ns["codec"]


def struct_decoder(cls, version: int, flex: bool) -> Reader:
    key = (cls, version, flex)
    dec = _decoders.get(key)
    if dec is None:
        dec = _decoders[key] = _build_decoder(cls, version, flex)
    return dec


def struct_encoder(cls, version: int, flex: bool) -> Writer:
    key = (cls, version, flex)
    enc = _encoders.get(key)
    if enc is None:
        enc = _encoders[key] = _build_encoder(cls, version, flex)
    return enc


def _build_decoder(cls, version: int, flex: bool) -> Reader:
    fields = cls.__kafka_fields__
    regular, tagged = _present(cls, version, flex)
    ns: dict[str, Any] = {"_cls": cls, "_tags": P.read_tag_section, "_tagged": _decode_tagged}
    lines = ["def codec(buf, pos):"]
    for k, group in enumerate(_fixed_runs(regular)):
        if isinstance(group, list):
            s = struct.Struct(">" + "".join(f.type.fmt for _, f in group))
            ns[f"_S{k}"] = s
            targets = "".join(f"v{i}, " for i, _ in group)
            lines.append(f"    {targets}= _S{k}.unpack_from(buf, pos)")
            lines.append(f"    pos += {s.size}")
        else:
            i, f = group
            ns[f"_r{i}"] = field_reader(f, version, flex)
            lines.append(f"    v{i}, pos = _r{i}(buf, pos)")
    if flex:
        for i, f in tagged:
            ns[f"_r{i}"] = field_reader(f, version, flex)
            lines.append(f"    v{i} = {_default_expr(i, f, ns)}")
        lines.append("    u = None")
        lines.append("    if buf[pos] == 0:")
        lines.append("        pos += 1")
        lines.append("    else:")
        lines.append("        raw, pos = _tags(buf, pos)")
        lines.append("        for tag, data in raw:")
        for i, f in tagged:
            lines.append(f"            if tag == {f.tag}:")
            lines.append(f"                v{i} = _tagged(_r{i}, data)")
            lines.append("                continue")
        lines.append("            if u is None:")
        lines.append("                u = []")
        lines.append("            u.append((tag, bytes(data)))")
    present = {i for i, _ in regular} | {i for i, _ in tagged}
    args = [f"v{i}" if i in present else _default_expr(i, f, ns) for i, f in enumerate(fields)]
    lines.append(f"    o = _cls({', '.join(args)})")
    if flex:
        lines.append("    if u is not None:")
        lines.append("        o.unknown_tagged_fields = u")
    lines.append("    return o, pos")
    return _compile("\n".join(lines), ns, f"decode {cls.__name__} v{version}")


def _build_encoder(cls, version: int, flex: bool) -> Writer:
    regular, tagged = _present(cls, version, flex)
    ns: dict[str, Any] = {"_write_tags": _write_tags}
    lines = ["def codec(b, o, holes):"]
    for k, group in enumerate(_fixed_runs(regular)):
        if isinstance(group, list):
            s = struct.Struct(">" + "".join(f.type.fmt for _, f in group))
            ns[f"_S{k}"] = s
            values = ", ".join(f"o.{f.name}" for _, f in group)
            lines.append(f"    b += _S{k}.pack({values})")
        else:
            i, f = group
            ns[f"_w{i}"] = field_writer(f, version, flex)
            lines.append(f"    _w{i}(b, o.{f.name}, holes)")
    if flex:
        lines.append("    t = None")
        for i, f in tagged:
            ns[f"_w{i}"] = field_writer(f, version, flex)
            d = f.default
            if isinstance(d, list):
                cond = "x"
            elif d is None:
                cond = "x is not None"
            else:
                ns[f"_c{i}"] = d
                cond = f"x != _c{i}"
            lines.append(f"    x = o.{f.name}")
            lines.append(f"    if {cond}:")
            lines.append("        if t is None:")
            lines.append("            t = []")
            lines.append(f"        t.append(({f.tag}, _w{i}, x))")
        lines.append("    u = o.unknown_tagged_fields")
        lines.append("    if t is None and not u:")
        lines.append("        b.append(0)")
        lines.append("    else:")
        lines.append("        _write_tags(b, t, u, holes)")
    if len(lines) == 1:
        lines.append("    pass")
    return _compile("\n".join(lines), ns, f"encode {cls.__name__} v{version}")


# -- whole bodies ------------------------------------------------------------------------


def decode_body(cls, version: int, flex: bool, buf, pos: int = 0, *, exact: bool = True):
    """Decode a message that must end exactly at the end of ``buf`` (unless not ``exact``).

    Requests are decoded with ``exact=False``: Kafka's broker ignores bytes after a
    request body, and librdkafka 2.16 sends three such bytes after Metadata v12.
    """
    try:
        obj, pos = struct_decoder(cls, version, flex)(buf, pos)
    except ProtocolError:
        raise
    except (struct.error, IndexError):
        raise P.short(cls.__name__) from None
    except (ValueError, OverflowError, UnicodeDecodeError) as e:
        raise ProtocolError(f"cannot decode {cls.__name__}: {e}") from None
    if exact and pos != len(buf):
        raise ProtocolError(f"{len(buf) - pos} unexpected bytes after {cls.__name__}")
    return obj


def encode_body(cls, version: int, flex: bool, obj, b: bytearray, holes: list) -> None:
    if type(obj) is not cls:
        raise TypeError(f"expected {cls.__name__}, got {type(obj).__name__}")
    try:
        struct_encoder(cls, version, flex)(b, obj, holes)
    except (struct.error, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"cannot encode {cls.__name__} v{version}: {e}") from e
