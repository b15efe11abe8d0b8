"""One thin module per command family: each parses its settings and calls the library.

Every module imports only typer and the settings at import time; heavy libraries (pandas,
torch, stable-baselines3) load inside the command that needs them, so ``spy-rl health`` and
``--help`` start in a fraction of a second.
"""
