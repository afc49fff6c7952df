def main(count: int) -> list[str]:
    return [f"file-{i}.txt" for i in range(count)]
