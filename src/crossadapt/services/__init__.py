"""Local services for development and tests: Airflow 3 and an S3 server, bound to 127.0.0.1 only."""

from crossadapt.errors import CrossAdaptError


class ServiceError(CrossAdaptError):
    """A local service failed to start, become ready, respond or stop."""
