"""$CURATE_PROXY_STEPS: the steps of the proxy that --model proxy trains (documented in the README tour)."""

from __future__ import annotations

import pytest

from curate.errors import BadUsage
from curate.train.proxy import ProxyConfig, default_config


def test_unset_is_the_dataclass_default(monkeypatch):
    monkeypatch.delenv("CURATE_PROXY_STEPS", raising=False)
    assert default_config() == ProxyConfig()


def test_a_value_sets_only_the_steps(monkeypatch):
    monkeypatch.setenv("CURATE_PROXY_STEPS", "12")
    assert default_config() == ProxyConfig(steps=12)


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_a_bad_value_says_how_to_fix_it(monkeypatch, value):
    monkeypatch.setenv("CURATE_PROXY_STEPS", value)
    with pytest.raises(BadUsage) as error:
        default_config()
    assert "CURATE_PROXY_STEPS" in error.value.message and "unset it" in error.value.hint
