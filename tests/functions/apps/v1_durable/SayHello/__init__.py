from ..shared_code.greetings import greeting  # noqa: TID252 - relative, as in Azure's samples


def main(name: str) -> str:
    return greeting(name)
