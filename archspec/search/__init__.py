"""Searches over a spec's variants (docs/search.md): the search space (:mod:`.space`), the
objectives and the MnasNet reward (:mod:`.objectives`), accuracy proxies (:mod:`.proxies`:
short training, ReXNet's rank), the Optuna study shared through its storage
(:mod:`.study`), NetAdapt (:mod:`.adapt`), the feature-rank measure and ReXNet's
random-network study (:mod:`.rank`) and their plots (:mod:`.plots`). Optuna, torch and
matplotlib are imported inside the functions that need them."""
