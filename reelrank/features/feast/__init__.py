"""Feast: the definitions of ReelRank's views and feature service, the store built from
Settings, and the providers over its offline and online stores.

Every module here imports Feast lazily (inside functions), so importing this package
stays cheap and Feast-free.
"""
