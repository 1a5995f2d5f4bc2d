"""What a selector reads: the rows of a pool, streamed, and on demand a model or the workspace.

A `Pool` is a dataset version (or an in-memory frame) restricted to some ids in some order.
Rows are streamed from the shards a batch at a time in storage order, each tagged with
`_pos`, its position in the pool; selectors put what they compute at that position, so
nothing but the id column and per-example numbers is ever held for the whole pool.

`subset(ids)` makes the next step's pool in a chain: it shares the source, the loaded models,
the embedding cache and the score cache of its parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.catalog.versions import DatasetVersion
from curate.errors import BadInput, BadUsage

Progress = Callable[[str, int, int | None], None]


@dataclass
class _Shared:
    """Resources a pool and its subsets have in common."""

    version: DatasetVersion | None
    frame: pl.DataFrame | None
    ws: Any  # Workspace | None
    root_ids: pl.Series
    models: dict[str, Any] = field(default_factory=dict)
    model_paths: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Pool:
    shared: _Shared
    root_pos: np.ndarray  # pool position -> row in the source
    model: str = "proxy"
    seed: int = 0
    template: str = "auto"
    batch_rows: int = 4096
    progress: Progress | None = None
    truncated: int = 0  # rows cut to the model's context while this pool was scored (reported per step)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_version(cls, version: DatasetVersion, ws=None, **options: Any) -> Pool:
        ids = version.scan().select("id").collect()["id"]
        return cls(_Shared(version, None, ws, ids), np.arange(len(ids), dtype=np.int64), **options)

    @classmethod
    def from_rows(cls, rows: pl.DataFrame | Sequence[dict], **options: Any) -> Pool:
        """A pool over rows in memory (Python API and tests); an `id` column is made if absent."""
        frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(list(rows))
        if "prompt" not in frame.columns:
            raise BadInput("rows need a prompt column", hint="columns: " + ", ".join(frame.columns))
        for column in ("response",):
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        if "id" not in frame.columns:
            from curate.catalog.ids import content_fields_of, content_id_expr

            frame = frame.with_columns(content_id_expr(content_fields_of(frame.columns)).alias("id"))
        return cls(_Shared(None, frame, None, frame["id"].cast(pl.String)), np.arange(frame.height, dtype=np.int64),
                   **options)

    def subset(self, ids: pl.Series | Sequence[str]) -> Pool:
        """The rows with these ids, in this order (ids must belong to the pool)."""
        wanted = pl.DataFrame({"id": pl.Series(ids, dtype=pl.String)}).with_row_index("_order")
        mine = pl.DataFrame({"id": self.ids, "_root": self.root_pos})
        joined = wanted.join(mine, on="id", how="left").sort("_order")
        if joined["_root"].null_count():
            raise ValueError("subset ids must come from the pool")
        return Pool(self.shared, joined["_root"].to_numpy().astype(np.int64), self.model, self.seed, self.template,
                    self.batch_rows, self.progress)

    # -- what it holds -------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return len(self.root_pos)

    @property
    def ids(self) -> pl.Series:
        return self.shared.root_ids.gather(self.root_pos)

    def ids_digest(self) -> str:
        """xxh3-64 of the pool's ids in order (hashed a slice at a time)."""
        import xxhash

        hasher = xxhash.xxh3_64()
        ids = self.ids
        for start in range(0, len(ids), 100_000):
            hasher.update(ids.slice(start, 100_000).str.join("\n").item().encode() + b"\n")
        return hasher.hexdigest()

    @property
    def version(self) -> DatasetVersion | None:
        return self.shared.version

    @property
    def ws(self):
        return self.shared.ws

    @property
    def label(self) -> str:
        return self.version.ref if self.version is not None else "the rows"

    def columns(self) -> list[str]:
        if self.version is not None:
            return list(self.version.columns)
        return list(self.shared.frame.columns)

    def iter_frames(self, columns: Sequence[str], mask: np.ndarray | None = None) -> Iterator[pl.DataFrame]:
        """The pool's rows (only those where `mask` is set), `columns` plus `_pos`, in storage order."""
        lookup = np.full(len(self.shared.root_ids), -1, dtype=np.int64)
        positions = np.arange(self.rows, dtype=np.int64)
        if mask is not None:
            positions = positions[mask]
        lookup[self.root_pos[positions]] = positions
        columns = list(dict.fromkeys(columns))
        offset = 0
        for batch in self._source_batches(columns):
            pos = lookup[offset:offset + batch.height]
            offset += batch.height
            keep = pos >= 0
            if keep.any():
                yield batch.with_columns(pl.Series("_pos", pos)).filter(pl.Series(keep))

    def _source_batches(self, columns: list[str]) -> Iterator[pl.DataFrame]:
        if self.version is not None:
            yield from self.version.iter_batches(self.batch_rows, columns=columns)
        else:
            frame = self.shared.frame.select(columns)
            for start in range(0, frame.height, self.batch_rows):
                yield frame.slice(start, self.batch_rows)

    def values(self, expr: pl.Expr, columns: Sequence[str], dtype=np.float64, fill=np.nan) -> np.ndarray:
        """`expr` (one value per row) for the whole pool by position, computed a batch at a time."""
        out = np.full(self.rows, fill, dtype=dtype)
        for frame in self.iter_frames(columns):
            out[frame["_pos"].to_numpy()] = frame.select(expr.alias("_v"))["_v"].to_numpy()
        return out

    def missing_responses(self) -> np.ndarray:
        response = pl.col("response")
        missing = response.is_null() | (response.str.strip_chars() == "")
        return self.values(missing, ["response"], dtype=bool, fill=True)

    def say(self, what: str, done: int, total: int | None = None) -> None:
        if self.progress:
            self.progress(what, done, total)

    # -- models ----------------------------------------------------------------------------
    def model_path(self, spec: str | None = None) -> str:
        """What `spec` (default: the pool's model) names: "proxy" becomes the dataset's cached proxy, a `.gguf`
        file in a workspace the folder it is dequantised into once (so the SFT of token cleaning opens it too)."""
        spec = spec or self.model
        if spec not in self.shared.model_paths:
            if spec == "proxy":
                if self.version is None or self.ws is None:
                    raise BadUsage("--model proxy needs a dataset in a workspace",
                                   hint="pass a model folder or hub id for rows in memory")
                from curate.train.proxy import default_config, resolve_model

                steps = default_config().steps
                resolved = resolve_model(self.ws, self.version, "proxy",
                                         progress=lambda step, loss: self.say("training the proxy model", step, steps))
            elif self.ws is not None and spec.lower().endswith(".gguf"):
                from curate.lm.gguf_cache import cached_folder

                self.say("dequantising the GGUF model once", 0, None)
                resolved = str(cached_folder(Path(spec).expanduser(), self.ws.models_dir)[0])
            else:
                resolved = spec
            self.shared.model_paths[spec] = resolved
        return self.shared.model_paths[spec]

    def lm(self, spec: str | None = None):
        """The loaded model (float32 on CPU, the accelerator when there is one), loaded once per pool chain."""
        path = self.model_path(spec)
        if path not in self.shared.models:
            from curate.lm.loading import load

            self.shared.models[path] = load(path, dtype="float32" if not _has_cuda() else "auto")
        return self.shared.models[path]

    def model_hash(self, spec: str | None = None) -> str:
        """The model's identity, without loading it when it is a local folder or GGUF file."""
        path = self.model_path(spec)
        folder = Path(path).expanduser()
        if folder.is_dir() or folder.is_file() and folder.suffix.lower() == ".gguf":
            from curate.lm.loading import fingerprint

            return fingerprint(folder)
        return self.lm(spec).model_hash

    # -- caches ----------------------------------------------------------------------------
    def embeddings_cache(self) -> dict[str, np.ndarray]:
        return self.shared.embeddings

    def cached_scores(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, found) by pool position from the catalog's scores table."""
        values = np.full(self.rows, np.nan)
        found = np.zeros(self.rows, dtype=bool)
        if self.ws is None or self.version is None:
            return values, found
        from curate.catalog.scores import load_scores

        frame = load_scores(self.ws, self.version.ref, key)
        if frame.height == 0:
            return values, found
        positions = pl.DataFrame({"id": self.ids}).with_row_index("_p").join(frame, on="id", how="inner")
        index = positions["_p"].to_numpy()
        values[index] = positions["value"].to_numpy()
        found[index] = True
        return values, found

    def store_scores(self, key: str, scorer: str, model_hash: str | None, params: dict, positions: np.ndarray,
                     values: np.ndarray, token_values: list[np.ndarray] | None = None) -> None:
        if self.ws is None or self.version is None or len(positions) == 0:
            return
        from curate.catalog.scores import store_scores

        ids = self.ids.gather(positions)
        tokens = None
        if token_values is not None:
            tokens = pl.DataFrame({"id": ids, "values": pl.Series([np.asarray(v, dtype=np.float32) for v in token_values],
                                                                   dtype=pl.List(pl.Float32))})
        store_scores(self.ws, self.version.ref, key, scorer, model_hash, params,
                     pl.DataFrame({"id": ids, "value": np.asarray(values, dtype=np.float64)}), tokens)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
