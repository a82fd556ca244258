"""Thin adapters that route a library's calls through the current run.

Each is imported only when used; none decides whether to replay or touches the store.
"""
