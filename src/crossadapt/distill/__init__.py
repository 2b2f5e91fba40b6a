"""Offline stage: retained-window sampling and progressive distillation."""
