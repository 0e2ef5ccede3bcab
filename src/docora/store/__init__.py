"""All SQL lives here, one module per table family; functions take a connection."""
