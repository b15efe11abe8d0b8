"""Hyperparameter and design search on Optuna's RDB storage (``spy-rl tune``).

The objective is the walk-forward's validation score (each seed's model is kept by its
validation window; test windows are never read), reported fold by fold so that a median
pruner stops bad configurations early. Any number of workers on any machines share one study
through its storage (SQLite on one machine, PostgreSQL for many).

Modules: :mod:`.space` (what a trial draws), :mod:`.storage` (where the study lives),
:mod:`.study` (what a study evaluates, stored in it), :mod:`.trials` (what a trial keeps, how trials
are counted; no torch), :mod:`.objective` (one trial), :mod:`.stop` (how a worker stops on a signal),
:mod:`.worker` (the loop of ``spy-rl tune run``), :mod:`.report` (the HTML page and the DSR; no
torch), :mod:`.best` (the best configuration's bundles).
"""
