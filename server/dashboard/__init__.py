"""The home page: what is happening now at a school, for each role."""
