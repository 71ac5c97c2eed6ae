"""Request and response models that more than one service speaks (one module per conversation)."""
