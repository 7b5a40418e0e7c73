"""Clinical content as data (installed as ``cds.content``): no code lives here."""
