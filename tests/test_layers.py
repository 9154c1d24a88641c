"""The layers' import rules, read from the source (walking each package's ASTs), and the
record-format errors crossing from kafkito.records into storage's callers.

records is the bottom (the record format: storage and the client both build and parse
batches), protocol and storage sit beside each other above it, broker and client on top.
An import that breaks the direction fails here, naming the file and line.
"""

import ast
import importlib
import pathlib

import pytest

from kafkito.broker.errors import storage_error_code
from kafkito.protocol import ErrorCode
from kafkito.records import codecs
from kafkito.records import errors as record_errors
from kafkito.storage import errors as storage_errors

# package -> top-level names (ours as kafkito.<x>, or third-party) it must not import
FORBIDDEN = {
    "kafkito.records": {"kafkito.storage", "kafkito.protocol", "kafkito.broker",
                        "kafkito.client", "kafkito.testing", "trio"},
    "kafkito.storage": {"kafkito.protocol", "kafkito.broker", "kafkito.client",
                        "kafkito.testing", "trio"},
    "kafkito.protocol": {"kafkito.storage", "kafkito.broker", "kafkito.client",
                         "kafkito.testing", "trio"},
    # The client runs under asyncio or trio through anyio, and speaks only protocol and records.
    "kafkito.client": {"kafkito.storage", "kafkito.broker", "kafkito.testing", "trio"},
    # Agent tooling sits on the client (and reads the broker only over HTTP): it works
    # against any Kafka-compatible broker.
    "kafkito.agents": {"kafkito.storage", "kafkito.broker", "kafkito.protocol", "kafkito.testing",
                       "trio"},
}


def _imports(package: str):
    """(file, line, absolute module) of every import in the package's source files,
    relative imports resolved, including imports inside functions."""
    pkg = importlib.import_module(package)
    [root] = pkg.__path__
    root = pathlib.Path(root)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = package.split(".") + list(rel.parts)
        here = parts[:-1]  # the package a relative import starts from
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield path, node.lineno, a.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                yield path, node.lineno, module
                for a in node.names:  # `from kafkito import storage` names a package too
                    yield path, node.lineno, f"{module}.{a.name}"


def _breaks(module: str, forbidden: set[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_only_below_itself(package):
    found = list(_imports(package))
    assert len(found) > 10  # the walk saw the package's imports (not an empty folder)
    bad = [f"{p}:{line}: {m}" for p, line, m in found if _breaks(m, FORBIDDEN[package])]
    assert not bad, f"{package} imports across its layer:\n" + "\n".join(bad)


def test_records_imports_nothing_of_ours_but_itself():
    ours = {m for _, _, m in _imports("kafkito.records")
            if m == "kafkito" or m.startswith("kafkito.")}
    assert ours and all(m.startswith("kafkito.records") for m in ours), sorted(ours)


def test_storage_uses_the_shared_record_format():
    """The move happened: storage reads batches through kafkito.records, and no module named
    after the record format is left in storage."""
    modules = {m for _, _, m in _imports("kafkito.storage")}
    assert "kafkito.records.batch" in modules
    root = pathlib.Path(importlib.import_module("kafkito.storage").__path__[0])
    assert not [p.name for p in root.glob("*") if p.suffix in (".py", ".c")
                and p.stem in {"batch", "codecs", "recordscan", "_recscan"}]


def test_record_format_errors_are_storage_errors():
    """A corrupt compressed batch found by the codecs is what storage's callers catch as a
    StorageError and what the broker answers CORRUPT_MESSAGE for."""
    with pytest.raises(storage_errors.StorageError) as e:
        codecs.decompress(codecs.GZIP, b"not gzip", 1 << 20)
    assert isinstance(e.value, storage_errors.CorruptRecordError)
    assert storage_error_code(e.value) == ErrorCode.CORRUPT_MESSAGE
    for name in ("CorruptRecordError", "InvalidRecordError", "RecordTooLargeError",
                 "UnsupportedCompressionTypeError", "UnsupportedMessageFormatError"):
        assert getattr(storage_errors, name) is getattr(record_errors, name)
        assert issubclass(getattr(record_errors, name), storage_errors.StorageError)
