def main(number: int) -> int:
    return number + 1
