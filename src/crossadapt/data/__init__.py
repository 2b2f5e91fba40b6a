"""Raw logs to daily partitions, feature schema, vocabularies and encoding."""
