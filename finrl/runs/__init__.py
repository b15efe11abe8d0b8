"""The runs in a models folder with their backtest reports: listing, details and comparison."""
