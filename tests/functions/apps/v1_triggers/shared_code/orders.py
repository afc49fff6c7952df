import json


class NotAnOrder(ValueError):
    pass


def parse_order(text):
    """An order message: {"order": "<id>", "items": [...]}; anything else raises NotAnOrder."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NotAnOrder(f"not JSON: {text!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("order"), str):
        raise NotAnOrder(f"no order id in {text!r}")
    return {"order": data["order"], "items": list(data.get("items", []))}
