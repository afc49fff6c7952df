from ..shared_code.points import Point  # noqa: TID252 - relative, as in Azure's samples


def main(point: Point) -> Point:
    return Point(point.x * 10, point.y * 10)
