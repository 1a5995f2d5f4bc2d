"""Ledger keys name the policy and the reward specification (issue 16 item 4)."""

from __future__ import annotations

import pytest

from curate.catalog.ledger import ledger_key, match_key, reward_spec
from curate.errors import BadUsage


def test_reward_spec_is_canonical_names_weights_and_threshold():
    assert reward_spec([("math", 1.0)]) == "math"
    assert reward_spec([("math", 1.0), ("format", 0.2)]) == "0.2*format+math"
    assert reward_spec([("format", 0.2), ("math", 1)]) == reward_spec([("math", 1.0), ("format", 0.2)])
    assert reward_spec([("math", 2.0)]) == "2*math"
    assert reward_spec([("math", 1.0), ("format", 0.0)]) == "0*format+math"
    assert reward_spec([("math", 1.0)], success_threshold=1.0) == "math;pass>=1"
    assert reward_spec([("mylib.r:score", 0.25)]) == "0.25*mylib.r:score"
    with pytest.raises(ValueError):
        reward_spec([])


def test_ledger_key_adds_the_spec_to_the_policy_once():
    assert ledger_key("abc", [("math", 1.0)]) == "abc#math"
    assert ledger_key("abc#math", [("math", 1.0)]) == "abc#math"
    with pytest.raises(BadUsage, match="'abc#math'.*'format'") as caught:
        ledger_key("abc#math", [("format", 1.0)])
    assert "--model-key abc" in caught.value.hint


def test_match_key_reads_a_policy_key_as_its_one_reward():
    keys = ["old-hash", "p#math", "q#math", "q#format"]
    assert match_key(keys, "old-hash") == "old-hash"  # written before reward-keyed ledgers: still readable
    assert match_key(keys, "p") == "p#math"
    assert match_key(keys, "q#format") == "q#format"
    assert match_key(keys, "unknown") == "unknown"
    with pytest.raises(BadUsage, match="2 reward specifications: q#format, q#math"):
        match_key(keys, "q")
