"""The latency-simulating harness: run agents on multi-task instances and score them."""
