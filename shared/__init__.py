"""Code every service shares: settings, database, errors, auth, logging, metrics, app factory."""
