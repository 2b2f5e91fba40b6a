"""Parameters of the pipeline (params.yaml) and their validation."""
