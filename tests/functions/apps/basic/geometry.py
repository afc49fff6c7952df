class Point:
    """A custom type travelling through the SDK's to_json/from_json envelope (protocol Appendix A)."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    @staticmethod
    def to_json(obj: "Point") -> dict:
        return {"x": obj.x, "y": obj.y}

    @staticmethod
    def from_json(data: dict) -> "Point":
        return Point(data["x"], data["y"])
