"""Data sets: synthetic steel generator, UHCS readers, splits, condition schemas."""
