"""Consented face recognition at the school (DESIGN invariants 5 and 6).

Templates (128-d face encodings) are created at the school, stored encrypted in the edge store,
matched at the school and deleted when consent goes. Nothing in this package publishes,
uploads or logs a template, an encoding or a face image.
"""
