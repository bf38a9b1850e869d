"""evalkit inside lm-evaluation-harness: its `LM` over our loaded model, its tasks, our records.

`llama_lm` scores with the already-loaded llama.cpp model, `remote` routes to lm-eval's
completions models with a check of the server's log-likelihoods, `tasks` finds task configs
offline, and `results` turns lm-eval's output into evalkit records (per-task scores, items).
"""
