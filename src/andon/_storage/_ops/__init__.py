"""The store operations, in groups by who calls them; ``_engine.Engine`` has them all."""
