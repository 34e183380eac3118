"""UniGuard: merge TaskGuards and a MultiTaskGuard by a searched set of merge coefficients.

`methods/` holds the registry of merge methods (pure torch, one parameter at a time), `merging.py`
applies one to whole state dicts per layer group, `sources.py` loads and checks the guards to merge,
`scoring.py` scores a merged model on a tokenised, cached validation set, `recipe.py` is the replayable
`merge.yaml`, and `search.py` runs the Optuna search and writes the UniGuard folder.
"""
