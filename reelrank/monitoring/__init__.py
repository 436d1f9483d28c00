"""Monitoring: reference and current profiles, population stability, drift decisions."""
