"""Triggers that durablehost listens for itself: timer and queue functions (azure-fidelity-notes §4-5).

    plan.py       which functions are served and how, and why not (``--list``, the banner)
    cron.py       NCRONTAB expressions; timespan.py .NET TimeSpan text; schedule.py schedules in a zone
    timer.py      a timer function's listener; monitor.py its Last/Next status; lease.py its singleton lease
    queue.py      a queue function's listener; azure_queues.py the queue client (azure-storage-queue)
    invoke.py     building TimerRequest/QueueMessage and calling the function as the worker does
    listeners.py  TriggerListeners: all listeners of an app, started after the engine
    options.py    host.json ``extensions.queues`` and the listeners' timings

Import the modules themselves: this package re-exports nothing, so that ``durablehost.http.appconfig``
(which reads ``extensions.queues`` into ``options.QueuesOptions``) does not import the queue client.
"""
