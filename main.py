"""Entry script for the Functions Python worker (``PYTHON_SCRIPT_FILE_NAME=main.py``).

The app lives in the ``function_app/`` package; a folder of that name shadows a ``function_app.py``,
so the worker is pointed at this file instead.
"""

from function_app import app

__all__ = ["app"]
