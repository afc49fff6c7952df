import function_app.activities  # noqa: F401  registers the functions

from function_app import app

__all__ = ["app"]
