"""The pure clinical core: FHIR resources and a date in, an assessment out. No I/O, no Flask."""
