"""Online stage: daily asymmetric co-distillation and drift-aware weights."""
