"""consents: a student's consent records (data, biometric, notifications) and social categories."""
