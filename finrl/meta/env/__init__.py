"""The single-asset daily trading environment and its execution model."""
