"""Allocation: the enterprise's people across projects, conflicts resolved by strategic priority."""
