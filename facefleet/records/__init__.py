"""What is written down: the tables, engines and sessions, the states and their moves, bucket keys, checkpoints, the embedded schema."""
