"""Data validation, drift reports, shadow evaluation and promotion."""
