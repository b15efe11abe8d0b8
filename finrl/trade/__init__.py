"""trade layer."""
