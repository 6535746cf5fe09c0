"""The registry's model of projects, free of I/O."""
