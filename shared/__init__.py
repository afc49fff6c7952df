"""Code shared by the agent app's HTTP triggers, orchestrators and activities (deployed to Azure too)."""
