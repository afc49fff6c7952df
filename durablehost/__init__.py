"""durablehost: a pure-Python Durable Functions host.

It runs an unmodified ``azure-functions-durable`` app: the SDK replays the orchestrators, durablehost
keeps their history in Table storage (Azurite, Azure Storage or embedded SQLite) and plays the part the
Durable Task extension plays in Azure.
"""

__version__ = "0.1.0"
