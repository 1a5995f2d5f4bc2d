"""SFT selection: strategies that choose (or clean) supervised examples by their responses.

fisher (FisherSFT, with `logdet`), token-clean (with `token_scores`), ifd, perplexity, length,
dedup and diversity. Registered by name in `curate.selectors.registry`.
"""
