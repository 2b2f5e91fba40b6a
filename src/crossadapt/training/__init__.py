"""Training loop, batching and evaluation metrics."""
