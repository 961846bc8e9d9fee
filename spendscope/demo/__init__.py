"""The demo: a realistic workload against the fake OpenAI server, and its cost report."""
