"""Earned-value management and health rules, free of I/O."""
