"""What a task tells the outside world: the outbox written with each state change, signed webhooks, live events."""
