"""An app whose import fails: `durablehost start` must say so and exit 3."""

import azure.durable_functions as df

app = df.DFApp()
raise ImportError("this app is broken on purpose")
