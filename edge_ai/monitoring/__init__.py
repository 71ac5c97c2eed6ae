"""The monitoring AI: ai_class 01 (SUNNY variant) and 02 (RAINY variant), the same program with a
setting."""
