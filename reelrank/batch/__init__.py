"""Batch inference: the top-k of every active user, precomputed and stored for serving.

:mod:`reelrank.batch.inference` computes the lists (in chunks locally, on Ray Data under
the Ray engine: :mod:`reelrank.engines.ray_batch`); :mod:`reelrank.batch.topk` stores
them with the model version in the configured online store (a table of its own in the
SQLite file, or one hash per user in Redis) and reads them back for the service.
"""
