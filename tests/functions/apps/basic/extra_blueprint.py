import azure.durable_functions as df

bp = df.Blueprint()


@bp.activity_trigger(input_name="name")
def from_blueprint(name: str) -> str:
    return f"blueprint says {name}"
