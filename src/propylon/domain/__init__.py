"""The core: ids, steps, events, lifecycle and the projection of an event log.

Imports nothing from HTTP, databases or providers.
"""
