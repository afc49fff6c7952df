def describe(timer):
    """What a starter records of the func.TimerRequest it got."""
    return {"past_due": timer.past_due, "status": timer.schedule_status}
