"""The engine: instance records, the episode runner, the dispatcher, activity workers and timers."""
