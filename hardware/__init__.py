"""Device drivers: bytes in, typed events out. Drivers decide nothing."""
