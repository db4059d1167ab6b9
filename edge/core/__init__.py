"""The decision core: pure functions over typed data. No clock, no I/O, no database."""
