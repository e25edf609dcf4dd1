"""The data layer: funnel spec, sources and readers, the store, derived tables."""
