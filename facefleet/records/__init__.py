"""What is written down: the tables, the states and their moves, bucket keys, checkpoints, the embedded schema."""
