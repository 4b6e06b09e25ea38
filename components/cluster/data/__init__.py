"""Cluster facts that age, as data: each JSON file names its ``source``, the date it was ``read``, its ``caveats``
and how to ``refresh`` it. ``components.cluster.zones`` reads ``gce_gpu_zones.json``; a test warns when it is
older than 180 days."""
