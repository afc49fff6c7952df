from function_app import app


@app.function_name("Shout")
@app.activity_trigger(input_name="text")
def shout(text: str) -> str:
    return text.upper()


@app.orchestration_trigger(context_name="context")
def shouting(context):
    result = yield context.call_activity(shout, context.get_input())
    return result
