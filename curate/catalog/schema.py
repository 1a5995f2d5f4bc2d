"""The catalog's tables (DESIGN §3) and the canonical example columns.

Data rows never enter DuckDB: they live in Parquet shards under `shards/NAME/vN/`.
The catalog holds what describes them: versions, lineage, drop reasons, scores,
selections, and the RL ledger (rollouts and per-prompt statistics).
"""

from __future__ import annotations

import polars as pl

SCHEMA_VERSION = 1

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
MESSAGES = pl.List(MESSAGE)

# Canonical example columns, in order. `prompt` is String or MESSAGES per dataset.
CANONICAL_COLUMNS = ("id", "prompt", "response", "answer", "tests", "domain", "meta")
TEXT_COLUMNS = ("id", "response", "answer", "tests", "domain", "meta")

DDL = """
CREATE TABLE IF NOT EXISTS catalog_info (
    key VARCHAR PRIMARY KEY,
    value VARCHAR
);
CREATE TABLE IF NOT EXISTS datasets (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    path VARCHAR NOT NULL,          -- shard folder, relative to the workspace
    rows BIGINT NOT NULL,
    shards INTEGER NOT NULL,
    prompt_type VARCHAR NOT NULL,   -- 'text' or 'messages'
    columns VARCHAR NOT NULL,       -- JSON {column: dtype}
    content_hash VARCHAR NOT NULL,  -- xxh3-128 over the ordered rows (every column)
    license VARCHAR,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS lineage (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    step INTEGER NOT NULL,          -- order of the steps that made this version
    op VARCHAR NOT NULL,            -- ingest | select | clean | mix | synth | ...
    inputs VARCHAR NOT NULL,        -- JSON list of sources or name@vN refs
    strategy VARCHAR,
    params VARCHAR NOT NULL,        -- JSON
    model_id VARCHAR,
    model_hash VARCHAR,
    code_version VARCHAR NOT NULL,
    seed BIGINT,
    rows_in BIGINT,
    rows_out BIGINT,
    drop_counts VARCHAR NOT NULL,   -- JSON {reason: count}
    created_at TIMESTAMP NOT NULL,
    duration_s DOUBLE,
    PRIMARY KEY (name, version, step)
);
CREATE TABLE IF NOT EXISTS drops (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    step INTEGER NOT NULL,
    id VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    detail VARCHAR
);
CREATE TABLE IF NOT EXISTS step_scores (  -- each selection step's score of every row it saw (`curate report`)
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    step INTEGER NOT NULL,
    id VARCHAR NOT NULL,
    value DOUBLE,                   -- NaN/NULL where the step had no score
    kept BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS scorers (
    scorer_key VARCHAR PRIMARY KEY, -- scorer + model hash + params hash
    scorer VARCHAR NOT NULL,
    model_hash VARCHAR,
    params VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    dataset VARCHAR NOT NULL,       -- name@vN
    id VARCHAR NOT NULL,
    scorer_key VARCHAR NOT NULL,
    value DOUBLE
);
CREATE TABLE IF NOT EXISTS selections (
    name VARCHAR NOT NULL,          -- the output dataset
    version INTEGER NOT NULL,
    source VARCHAR NOT NULL,        -- name@vN it selected from
    strategy VARCHAR NOT NULL,
    budget BIGINT,
    params VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS rollouts (
    rollout_id VARCHAR PRIMARY KEY, -- deterministic: run, step, prompt, sample index
    prompt_id VARCHAR NOT NULL,
    dataset VARCHAR,
    model_key VARCHAR NOT NULL,
    run VARCHAR,
    step BIGINT,
    sample_idx INTEGER,
    completion VARCHAR,
    reward DOUBLE,
    length INTEGER,
    truncated BOOLEAN,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS prompt_stats (
    prompt_id VARCHAR NOT NULL,
    model_key VARCHAR NOT NULL,
    attempts BIGINT NOT NULL,
    successes DOUBLE NOT NULL,
    reward_sum DOUBLE NOT NULL,
    reward_sq_sum DOUBLE NOT NULL,
    reward_mean DOUBLE,
    reward_var DOUBLE,
    alpha DOUBLE NOT NULL,          -- Beta posterior of the pass rate
    beta DOUBLE NOT NULL,
    last_seen TIMESTAMP,
    last_step BIGINT,
    zero_var_streak INTEGER NOT NULL,
    last_group_mean DOUBLE,         -- mean reward of the latest group: tells all-right from all-wrong streaks
    PRIMARY KEY (prompt_id, model_key)
);
CREATE TABLE IF NOT EXISTS comparisons (  -- one cell (strategy x seed) of `curate compare`
    cell_key VARCHAR PRIMARY KEY,   -- hash of name, pool, eval, base, strategy, seed and recipe hash
    name VARCHAR NOT NULL,          -- the comparison (--out)
    pool VARCHAR NOT NULL,          -- name@vN selected from
    pool_hash VARCHAR NOT NULL,
    eval VARCHAR NOT NULL,          -- name@vN evaluated on
    eval_hash VARCHAR NOT NULL,
    strategy VARCHAR NOT NULL,      -- the chain, e.g. dedup,fisher
    seed BIGINT NOT NULL,
    selection VARCHAR,              -- name@vN the selection made
    base_model VARCHAR NOT NULL,    -- the model that is trained
    base_hash VARCHAR NOT NULL,
    scorer_model VARCHAR NOT NULL,  -- the model the selectors used
    recipe_hash VARCHAR NOT NULL,   -- every setting that changes the result
    recipe VARCHAR NOT NULL,        -- JSON
    model_path VARCHAR,             -- the trained model folder
    metric VARCHAR NOT NULL,        -- the metric compared
    value DOUBLE,                   -- its value
    metrics VARCHAR,                -- JSON: every metric measured
    status VARCHAR NOT NULL,        -- selected | done
    select_s DOUBLE,
    train_s DOUBLE,
    eval_s DOUBLE,
    seconds DOUBLE,                 -- select + train + eval
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
"""
