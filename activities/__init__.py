"""Activity functions, one blueprint per capability. Activities do the I/O; they raise on failure,
except where a module documents a structured ``{"status": "rejected" | "failed"}`` result."""
