"""Modal screens: help, and typing a seed."""
