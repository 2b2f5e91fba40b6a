"""Pipeline steps: each reads its inputs, calls the library and writes outputs and metrics."""
