import json


class Point:
    """Passed through df_dumps envelopes: to_json/from_json as the SDK requires for custom classes."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    @staticmethod
    def to_json(obj: object) -> str:
        assert isinstance(obj, Point)
        return json.dumps({"x": obj.x, "y": obj.y})

    @staticmethod
    def from_json(json_str: str) -> object:
        data = json.loads(json_str)
        return Point(data["x"], data["y"])
