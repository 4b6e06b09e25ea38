"""NeuroDock's Pulumi components, one concept per module, grouped by layer.

Components take frozen ``*Args`` dataclasses, never pydantic models or raw config: the stack
program (``infra``) is the only place that reads configuration.
"""
