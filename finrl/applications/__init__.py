"""applications layer."""
