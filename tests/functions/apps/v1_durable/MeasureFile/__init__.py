from shared_code.sizes import size_of


def main(fileName: str) -> int:
    return size_of(fileName)
