"""Console accounts: users, role grants scoped to a region / school / class, sessions, invitations."""
