"""AI package sources for the edge programs, and the builder that turns them into archives."""
