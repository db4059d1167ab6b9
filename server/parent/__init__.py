"""parent: the parent's page (my children's day and month, notifications, preferences)."""
