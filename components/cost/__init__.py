"""What a stack costs: the price catalogue (``catalogue``), the arithmetic over a stack's resources and models
(``estimate``), and the rebuild of the catalogue's machine rows from its sources (``refresh``)."""
