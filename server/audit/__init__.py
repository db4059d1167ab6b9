"""The audit log: who viewed or changed a child's personal data, and when."""
