"""Research: walk-forward folds, multi-seed runs, ensembles and the statistics of honest evaluation."""
