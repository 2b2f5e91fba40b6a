"""Errors a user can act on: each message names what is wrong, where, and how to fix it."""


class CrossAdaptError(Exception):
    """Base class of every error caused by input, parameters or state a user controls.

    The CLI prints the message without a traceback and exits with status 2.
    """


class ParamsError(CrossAdaptError):
    """Invalid value in params.yaml or in a DAG run's configuration."""


class DataError(CrossAdaptError):
    """Unreadable or invalid input data (file, row, column or value)."""


class SchemaError(CrossAdaptError):
    """Feature schema missing, invalid, or not matching the data or a checkpoint."""


class CheckpointError(CrossAdaptError):
    """Checkpoint missing, truncated, foreign, or of another schema."""


class LedgerError(CrossAdaptError):
    """Online day applied out of order, twice, or with a gap."""


class ValidationFailed(CrossAdaptError):
    """A day failed its Great Expectations suite and was quarantined."""


class TrainingDiverged(CrossAdaptError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class RunLocked(CrossAdaptError):
    """Another run holds the lock on the same artifacts."""
