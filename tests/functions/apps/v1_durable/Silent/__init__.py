import azure.functions as func


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    """Never sets its output: the Functions host then answers 200 with an empty body."""
