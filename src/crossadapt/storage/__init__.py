"""Atomic files, checkpoints, the online ledger and run locks."""
