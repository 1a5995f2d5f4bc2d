"""Sources named by URL (`s3://bucket/pool.jsonl.gz`, `https://host/x.parquet`, `gs://...`), read
through fsspec when it and the scheme's filesystem package are installed.

The file is copied to a private temporary folder under its own name first, so every local
reader applies unchanged (format from the suffix, compression from the first bytes, line
numbers in errors), and is deleted once read. Errors name the URL, not the copy.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curate.errors import BadInput, BadUsage, CurateError

URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.+)$")


def is_url(spec: str) -> bool:
    return bool(URL.match(spec)) and not Path(spec).exists()


def read_url(spec: str, read_local: Callable[[Path], Iterator[Any]]) -> Iterator[Any]:
    """Copy `spec` locally with fsspec and yield `read_local(copy)`'s chunks, renamed after the URL."""
    try:
        import fsspec
    except ImportError:
        raise BadUsage(f"{spec}: reading URLs needs fsspec", hint="pip install fsspec (and s3fs, gcsfs, ... "
                                                                  "for the scheme)") from None
    scheme = URL.match(spec)["scheme"]
    try:
        fs, path = fsspec.core.url_to_fs(spec)
    except (ImportError, ValueError) as exc:
        raise BadUsage(f"{spec}: fsspec cannot open {scheme}:// URLs here ({exc})",
                       hint=f"install the filesystem package for {scheme}:// (e.g. s3fs, gcsfs, adlfs)") from None
    if fs.isdir(path):
        raise BadInput(f"{spec} is a folder", hint="name one file of it")
    folder = Path(tempfile.mkdtemp(prefix="curate-url-"))
    try:
        local = folder / Path(path).name
        try:
            with fs.open(path, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
        except FileNotFoundError:
            raise BadInput(f"{spec}: no such file") from None
        except OSError as exc:
            raise BadInput(f"{spec}: cannot read it ({exc})") from None
        try:
            for chunk in read_local(local):
                if dataclasses.is_dataclass(chunk) and hasattr(chunk, "source"):
                    chunk = dataclasses.replace(chunk, source=spec)
                yield chunk
        except CurateError as exc:  # name the URL, not the temporary copy
            message = exc.message.replace(str(local), spec)
            if message.startswith(local.name):
                message = spec + message[len(local.name):]
            raise type(exc)(message, hint=exc.hint) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
