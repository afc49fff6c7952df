"""The app lives in a package called function_app; main.py is the entry script (PYTHON_SCRIPT_FILE_NAME)."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
