"""The allocation model, free of I/O."""
