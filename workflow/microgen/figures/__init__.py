"""Figures and tables, one module per figure family."""
