"""Data access: the bundled feeder, load profiles and weather, and (later) live ingestion."""
