"""CrossAdapt: move a CTR model's knowledge into a new architecture, then co-train both online."""

__version__ = "0.1.0"
