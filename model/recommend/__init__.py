"""The recommender: catalogue items ranked for a user from the layered profile, a next-item model
and popularity, with reasons; trained and measured the way the field measures next-item ranking.

- catalogue.py: items as arrays (labels per layer, named or inferred from text)
- sequential.py: the next-item model (causal self-attention over the user's items)
- ranking.py: the score, consumed items excluded, the list with its reasons
- recommender.py: what the worker runs per batch of users (and the evaluation too)
- baselines.py: MostPop, ItemKNN
- evaluate.py: leave-one-out, full ranking, HR@10 / NDCG@10 / MRR, intervals
- train.py: training and scoring inside `strata train`
"""
