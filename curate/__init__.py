"""curate: data-centric curation and curricula for LLM post-training."""

__version__ = "0.1.0"
