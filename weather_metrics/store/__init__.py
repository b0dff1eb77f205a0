"""The write path and the tables: the database handle, models, row kinds with their rollups, the writer, pruning."""
