"""The HTTP side of ``durablehost start``: the app's HTTP triggers, the Durable Functions management API,
key checks off loopback, and a client of that API for the CLI. See README.md in this folder."""
