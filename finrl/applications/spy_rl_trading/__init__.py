"""spy_rl_trading layer."""
