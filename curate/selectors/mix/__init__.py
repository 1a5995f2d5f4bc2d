"""Domain mixing: the `mixing` strategy (`curate mix`), its weight rules, and k-means domains.

DoReMi's weight update runs inside proxy training, so it lives in `curate.train.doremi`.
"""
