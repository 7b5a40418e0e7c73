"""JSON Schemas of the CDS Hooks 2.0 requests and responses (data files)."""
