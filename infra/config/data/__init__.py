"""What the clouds offer, as data that ages: each JSON file names its ``source``, the date it was ``read`` and
how to ``refresh`` it. ``infra.config.offerings`` reads them; a test warns when one is older than 180 days."""
