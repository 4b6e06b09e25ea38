"""GPU facts and, later, GPU enablement (device plugin, DCGM)."""
