"""The gifted-children registry (decree No. 997)."""
